// Package config loads the agent's YAML configuration and lets every key be
// overridden by a command-line flag of the same dotted name.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPath is where the agent looks for its configuration on a board.
const DefaultPath = "/etc/camagent/camagent.yaml"

// Config is the agent's configuration. The yaml tags are also the flag names:
// capture.width in the file is --capture.width on the command line.
type Config struct {
	// Name is the camera's name as shown to viewers.
	Name string `yaml:"name" usage:"camera name shown to viewers"`
	// StateDir holds the identity key, paired viewers and pairing codes.
	StateDir string `yaml:"state_dir" usage:"directory for keys, paired viewers and codes"`
	// Listen is the UDP address of the QUIC server.
	Listen string `yaml:"listen" usage:"UDP address for viewers (QUIC)"`

	Log     LogConfig     `yaml:"log"`
	Capture CaptureConfig `yaml:"capture"`
	Encode  EncodeConfig  `yaml:"encode"`
	Relay   RelayConfig   `yaml:"relay"`
}

// RelayConfig lists the MASQUE relays the agent registers with, to be
// reachable from behind NAT (docs/relay.md).
type RelayConfig struct {
	URLs  []string `yaml:"urls" usage:"relay URLs, https://HOST:PORT/?fp=RELAY-KEY"`
	Token string   `yaml:"token" usage:"bearer token the relays expect (if not allow-listed by key)"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `yaml:"level" usage:"debug, info, warn or error"`
	Format string `yaml:"format" usage:"text, json or journal"`
}

// CaptureConfig selects the video source.
type CaptureConfig struct {
	Device       string        `yaml:"device" usage:"auto, test, or a V4L2 device path such as /dev/video0"`
	Format       string        `yaml:"format" usage:"pixel format: auto, H264, MJPG, NV12, YUYV or YU12"`
	Width        int           `yaml:"width" usage:"frame width in pixels"`
	Height       int           `yaml:"height" usage:"frame height in pixels"`
	FPS          float64       `yaml:"fps" usage:"frames per second"`
	StallTimeout time.Duration `yaml:"stall_timeout" usage:"reopen the device when no frame arrives for this long"`
}

// EncodeConfig selects the codec sent to viewers.
type EncodeConfig struct {
	Codec            string `yaml:"codec" usage:"h264 or mjpeg"`
	Bitrate          int    `yaml:"bitrate" usage:"H.264 target bitrate in bits per second"`
	KeyframeInterval int    `yaml:"keyframe_interval" usage:"frames between H.264 key frames"`
}

// Default returns the configuration used when neither file nor flags say
// otherwise.
func Default() Config {
	return Config{
		Name:     hostname(),
		StateDir: "/var/lib/camagent",
		Listen:   ":4433",
		Log:      LogConfig{Level: "info", Format: "text"},
		Capture: CaptureConfig{
			Device: "auto", Format: "auto",
			Width: 1280, Height: 720, FPS: 30,
			StallTimeout: 2 * time.Second,
		},
		Encode: EncodeConfig{Codec: "h264", Bitrate: 2_000_000, KeyframeInterval: 60},
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "camera"
	}
	return h
}

// Load reads the YAML file at path over the defaults. A missing file is an
// error unless missingOK is set (the default path on a fresh install).
// Unknown keys are errors, so a typo does not silently fall back to a
// default.
func Load(path string, missingOK bool) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && missingOK {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	if err := Parse(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML into cfg, keeping cfg's values for absent keys.
func Parse(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// yaml.v3 reports io.EOF for a file with no document: that is the
	// defaults, not an error.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Validate reports the first setting that cannot work, naming its key.
func (c Config) Validate() error {
	var problems []string
	if c.Name == "" {
		problems = append(problems, "name: must not be empty")
	}
	if c.StateDir == "" {
		problems = append(problems, "state_dir: must not be empty")
	}
	if c.Capture.Width < 16 || c.Capture.Width > 8192 || c.Capture.Width%2 != 0 {
		problems = append(problems, fmt.Sprintf("capture.width: %d is not an even number between 16 and 8192", c.Capture.Width))
	}
	if c.Capture.Height < 16 || c.Capture.Height > 8192 || c.Capture.Height%2 != 0 {
		problems = append(problems, fmt.Sprintf("capture.height: %d is not an even number between 16 and 8192", c.Capture.Height))
	}
	if c.Capture.FPS <= 0 || c.Capture.FPS > 240 {
		problems = append(problems, fmt.Sprintf("capture.fps: %g is not between 0 and 240", c.Capture.FPS))
	}
	switch strings.ToUpper(c.Capture.Format) {
	case "AUTO", "H264", "MJPG", "NV12", "YUYV", "YU12":
	default:
		problems = append(problems, fmt.Sprintf("capture.format: unknown pixel format %q", c.Capture.Format))
	}
	switch c.Encode.Codec {
	case "h264", "mjpeg":
	default:
		problems = append(problems, fmt.Sprintf("encode.codec: %q is neither h264 nor mjpeg", c.Encode.Codec))
	}
	if c.Encode.Bitrate < 50_000 {
		problems = append(problems, fmt.Sprintf("encode.bitrate: %d bit/s is too low", c.Encode.Bitrate))
	}
	if c.Encode.KeyframeInterval < 1 {
		problems = append(problems, "encode.keyframe_interval: must be at least 1 frame")
	}
	if c.Capture.StallTimeout < 100*time.Millisecond {
		problems = append(problems, "capture.stall_timeout: must be at least 100ms")
	}
	switch c.Log.Format {
	case "text", "json", "journal":
	default:
		problems = append(problems, fmt.Sprintf("log.format: %q is not text, json or journal", c.Log.Format))
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

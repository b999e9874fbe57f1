// Package config loads the agent's YAML configuration and lets every key be
// overridden by a command-line flag of the same dotted name.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
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
	Storage StorageConfig `yaml:"storage"`
	Motion  MotionConfig  `yaml:"motion"`
	Status  StatusConfig  `yaml:"status"`
	Board   BoardConfig   `yaml:"board"`
	Relay   RelayConfig   `yaml:"relay"`
	Limits  LimitsConfig  `yaml:"limits"`
}

// LimitsConfig bounds what paired viewers may make the camera hold or do
// (issue 11 items 7 and 8): a paired viewer is trusted to watch, not to
// take every connection, stream or CPU cycle. A connection over a limit is
// closed with BUSY (docs/protocol.md §6) and a reason naming the key.
type LimitsConfig struct {
	ConnsPerViewer int `yaml:"conns_per_viewer" usage:"most connections (live video and recordings) one viewer key may hold at once"`
	Conns          int `yaml:"conns" usage:"most viewer connections (live video and recordings) the camera holds at once"`
	RecRequests    int `yaml:"rec_requests" usage:"most camagent-rec/1 requests served at once on one connection (more wait)"`
	StillEncodes   int `yaml:"still_encodes" usage:"most still (JPEG snapshot) requests encoded at once, camera-wide (more wait)"`
}

// StorageConfig controls recording to the board's storage (docs/recording.md).
type StorageConfig struct {
	Mode             string        `yaml:"mode" usage:"recording: off, continuous, or event (motion-triggered)"`
	Dir              string        `yaml:"dir" usage:"recordings directory (default: STATE_DIR/recordings)"`
	SegmentDuration  time.Duration `yaml:"segment_duration" usage:"length of one recording file"`
	FragmentDuration time.Duration `yaml:"fragment_duration" usage:"fragment length, the most a power cut loses (<= 1s)"`
	Fsync            bool          `yaml:"fsync" usage:"fsync every fragment"`
	MaxMegabytes     int           `yaml:"max_megabytes" usage:"delete the oldest recordings beyond this size (0: no limit)"`
	MaxAge           time.Duration `yaml:"max_age" usage:"delete recordings older than this (0: keep)"`
	MinFreeMegabytes int           `yaml:"min_free_megabytes" usage:"delete the oldest recordings while less is free"`
	PreRoll          time.Duration `yaml:"pre_roll" usage:"event mode: video kept from before the event"`
	PostRoll         time.Duration `yaml:"post_roll" usage:"event mode: video kept after the last motion"`
}

// MotionConfig controls motion detection (docs/recording.md).
type MotionConfig struct {
	Enabled     bool          `yaml:"enabled" usage:"detect motion and log events with snapshots"`
	Sensitivity float64       `yaml:"sensitivity" usage:"0 (only large changes) to 1 (the slightest change)"`
	Zones       []string      `yaml:"zones" usage:"areas watched, as x,y,w,h fractions of the frame (default: all)"`
	Masks       []string      `yaml:"masks" usage:"areas ignored, as x,y,w,h fractions of the frame"`
	Interval    time.Duration `yaml:"interval" usage:"analyse at most one frame per interval"`
	Cooldown    time.Duration `yaml:"cooldown" usage:"an event ends after this long without motion"`
}

// StatusConfig places the local status endpoint (/healthz, /metrics).
type StatusConfig struct {
	Listen string `yaml:"listen" usage:"TCP address of the status endpoint (/healthz, /metrics); empty disables it"`
}

// BoardConfig names the board's optional hardware; empty or -1 means absent.
type BoardConfig struct {
	Root           string `yaml:"root" usage:"filesystem root for /sys and /proc (tests use a fake tree)"`
	LED            string `yaml:"led" usage:"status LED in /sys/class/leds, e.g. ACT (empty: none)"`
	PIRChip        string `yaml:"pir_chip" usage:"GPIO chip of the PIR sensor input, e.g. gpiochip0"`
	PIRLine        int    `yaml:"pir_line" usage:"GPIO line offset of the PIR sensor input (-1: none)"`
	IRCutChip      string `yaml:"ircut_chip" usage:"GPIO chip of the IR-cut filter output"`
	IRCutLine      int    `yaml:"ircut_line" usage:"GPIO line offset of the IR-cut filter output (-1: none)"`
	IRCutActiveLow bool   `yaml:"ircut_active_low" usage:"the IR-cut filter is in (day) when its line is low"`
	Watchdog       string `yaml:"watchdog" usage:"hardware watchdog device to feed, e.g. /dev/watchdog (empty: none; under systemd use RuntimeWatchdogSec)"`
}

// RelayConfig lists the MASQUE relays the agent registers with, to be
// reachable from behind NAT (docs/relay.md).
type RelayConfig struct {
	URLs  []string `yaml:"urls" usage:"relay URLs, https://HOST:PORT/?fp=RELAY-KEY"`
	Token string   `yaml:"token" usage:"bearer token the relays expect (if not allow-listed by key); prefer token_file or $CAMAGENT_RELAY_TOKEN: a flag is visible in ps"`
	// TokenFile holds the token (its first line), so that it appears
	// neither on a command line (ps shows every process's arguments) nor
	// in a config file that must stay readable.
	TokenFile string `yaml:"token_file" usage:"file holding the relay bearer token (e.g. /etc/camagent/relay.token, mode 0640 root:camagent)"`
}

// TokenEnv is the environment variable the relay token may come from
// (e.g. a unit's EnvironmentFile= or the `camagent relay` command).
const TokenEnv = "CAMAGENT_RELAY_TOKEN"

// ResolveToken returns the relay token from its one source: relay.token,
// relay.token_file or the environment variable TokenEnv (read with
// getenv). Setting more than one is an error, so that a stale token in
// one place never silently wins over another.
func (r RelayConfig) ResolveToken(getenv func(string) string) (string, error) {
	env := strings.TrimSpace(getenv(TokenEnv))
	var set []string
	if r.Token != "" {
		set = append(set, "relay.token")
	}
	if r.TokenFile != "" {
		set = append(set, "relay.token_file")
	}
	if env != "" {
		set = append(set, "$"+TokenEnv)
	}
	if len(set) > 1 {
		return "", fmt.Errorf("relay token given %d ways (%s): set only one", len(set), strings.Join(set, ", "))
	}
	switch {
	case r.TokenFile != "":
		tokens, err := ReadTokenFile(r.TokenFile)
		if err != nil {
			return "", fmt.Errorf("relay.token_file: %w", err)
		}
		if len(tokens) != 1 {
			return "", fmt.Errorf("relay.token_file %s: %d tokens, want one", r.TokenFile, len(tokens))
		}
		return tokens[0], nil
	case env != "":
		return env, nil
	}
	return r.Token, nil
}

// ReadTokenFile reads bearer tokens, one a line; blank lines and lines
// starting with # are skipped.
func ReadTokenFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tokens []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tokens = append(tokens, line)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s: no token", path)
	}
	return tokens, nil
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
	// Width and Height scale the picture before encoding; 0 keeps the
	// captured size. Passthrough sources cannot be scaled.
	Width  int `yaml:"width" usage:"encoded width in pixels (0: as captured)"`
	Height int `yaml:"height" usage:"encoded height in pixels (0: as captured)"`
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
		Storage: StorageConfig{
			Mode: "off", SegmentDuration: time.Minute, FragmentDuration: time.Second, Fsync: true,
			MinFreeMegabytes: 64, PreRoll: 5 * time.Second, PostRoll: 10 * time.Second,
		},
		Motion: MotionConfig{Sensitivity: 0.5, Interval: 100 * time.Millisecond, Cooldown: 5 * time.Second},
		Status: StatusConfig{Listen: "127.0.0.1:9433"},
		Board:  BoardConfig{Root: "/", PIRChip: "gpiochip0", PIRLine: -1, IRCutChip: "gpiochip0", IRCutLine: -1},
		Limits: DefaultLimits(),
	}
}

// DefaultLimits are the limits when none are configured. Per viewer key, 4
// connections: live video and recordings, each with room for one stale
// connection after a network change (the old one lingers until its idle
// timeout). Camera-wide, 32: eight such viewers, beyond what a home uplink
// carries of one 2 Mbit/s stream each, while a connection costs a few
// goroutines and buffers. 8 recordings requests per connection: a viewer
// seeking and fetching a still at once needs 2-3. 2 still encodes: a
// 1280x720 JPEG takes tens of milliseconds of one core of a Pi-class board,
// so two at a time leave the other cores to capture and encoding.
func DefaultLimits() LimitsConfig {
	return LimitsConfig{ConnsPerViewer: 4, Conns: 32, RecRequests: 8, StillEncodes: 2}
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
	if (c.Encode.Width == 0) != (c.Encode.Height == 0) || c.Encode.Width < 0 || c.Encode.Height < 0 ||
		c.Encode.Width%2 != 0 || c.Encode.Height%2 != 0 || c.Encode.Width > 8192 || c.Encode.Height > 8192 {
		problems = append(problems, fmt.Sprintf("encode.width, encode.height: %dx%d must both be 0 or both even sizes up to 8192",
			c.Encode.Width, c.Encode.Height))
	}
	if c.Encode.KeyframeInterval < 1 {
		problems = append(problems, "encode.keyframe_interval: must be at least 1 frame")
	}
	if c.Status.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Status.Listen); err != nil {
			problems = append(problems, fmt.Sprintf("status.listen: %v", err))
		}
	}
	if c.Board.PIRLine < -1 || c.Board.IRCutLine < -1 {
		problems = append(problems, "board.pir_line, board.ircut_line: a line offset, or -1 for none")
	}
	if c.Capture.StallTimeout < 100*time.Millisecond {
		problems = append(problems, "capture.stall_timeout: must be at least 100ms")
	}
	problems = append(problems, c.Storage.validate()...)
	problems = append(problems, c.Limits.validate()...)
	problems = append(problems, c.Motion.validate()...)
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

func (s StorageConfig) validate() []string {
	var p []string
	switch s.Mode {
	case "off", "continuous", "event":
	default:
		p = append(p, fmt.Sprintf("storage.mode: %q is not off, continuous or event", s.Mode))
	}
	if s.SegmentDuration < time.Second || s.SegmentDuration > time.Hour {
		p = append(p, "storage.segment_duration: must be between 1s and 1h")
	}
	if s.FragmentDuration < 100*time.Millisecond || s.FragmentDuration > time.Second {
		p = append(p, "storage.fragment_duration: must be between 100ms and 1s")
	}
	if s.MaxMegabytes < 0 || s.MinFreeMegabytes < 0 || s.MaxAge < 0 || s.PreRoll < 0 || s.PostRoll < 0 {
		p = append(p, "storage: sizes and durations must not be negative")
	}
	if s.PreRoll > time.Minute {
		p = append(p, "storage.pre_roll: at most 1m (it is held in memory)")
	}
	return p
}

func (l LimitsConfig) validate() []string {
	var p []string
	if l.ConnsPerViewer < 1 || l.Conns < 1 || l.RecRequests < 1 || l.StillEncodes < 1 {
		p = append(p, "limits: every limit must be at least 1")
	}
	if l.ConnsPerViewer > l.Conns {
		p = append(p, fmt.Sprintf("limits.conns_per_viewer: %d is above limits.conns (%d)", l.ConnsPerViewer, l.Conns))
	}
	return p
}

func (m MotionConfig) validate() []string {
	var p []string
	if m.Sensitivity < 0 || m.Sensitivity > 1 {
		p = append(p, fmt.Sprintf("motion.sensitivity: %g is not between 0 and 1", m.Sensitivity))
	}
	if m.Interval < 0 || m.Cooldown < 0 {
		p = append(p, "motion: durations must not be negative")
	}
	return p
}

// Package capture produces raw video frames: from V4L2 capture devices (found
// by their device_caps, driven through blackjack/webcam, with stall and
// unplug recovery) or from a synthetic test pattern with a visible clock.
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// Defaults applied by Open when Config leaves a field zero.
const (
	DefaultWidth        = 1280
	DefaultHeight       = 720
	DefaultFPS          = 30.0
	DefaultStallTimeout = 2 * time.Second
	// DefaultDevRoot is where ListDevices looks for video nodes.
	DefaultDevRoot = "/dev"
)

// Device names understood by Open besides a device path.
const (
	DeviceAuto = "auto" // first capture device, else the test source
	DeviceTest = "test" // the synthetic test source
)

// Format is a negotiated capture format.
type Format struct {
	Pixel  media.PixelFormat
	Width  int
	Height int
	FPS    float64
}

// Source delivers frames from one camera.
type Source interface {
	// Format is the negotiated format, as read back from the driver.
	Format() Format
	// Read blocks for the next frame. The frame's Data is a fresh copy
	// owned by the caller.
	Read(ctx context.Context) (media.RawFrame, error)
	// Close releases the device. It may be called while a Read is
	// blocked, which then returns an error (ErrClosed); Read must not be
	// called afterwards.
	Close() error
}

// ErrClosed is returned by Read on a closed source.
var ErrClosed = errors.New("capture: source closed")

// Config selects and configures a source.
type Config struct {
	// Device is "", "auto", "test" or a device path such as /dev/video0.
	Device string
	// Pixel is the wanted pixel format; "" picks the best the device offers
	// (H264, then MJPG, then NV12, YUYV, YU12). The test source defaults to YU12.
	Pixel media.PixelFormat
	// Width and Height default to 1280x720. A device may adjust them; the
	// negotiated size is in Source.Format.
	Width, Height int
	// FPS defaults to 30.
	FPS float64
	// Unpaced makes the test source produce frames as fast as they are read
	// (for benchmarks); FPS then only sets the nominal rate. Real devices
	// ignore it.
	Unpaced bool
	// StallTimeout is how long a device may deliver nothing before it is
	// reopened; default 2 s.
	StallTimeout time.Duration
	// DevRoot is where "auto" looks for devices; default /dev.
	DevRoot string
	// Logger receives state changes; nil discards.
	Logger *slog.Logger
}

// withDefaults fills the zero fields of cfg.
func (cfg Config) withDefaults() Config {
	if cfg.Width <= 0 {
		cfg.Width = DefaultWidth
	}
	if cfg.Height <= 0 {
		cfg.Height = DefaultHeight
	}
	if cfg.FPS <= 0 || math.IsNaN(cfg.FPS) || math.IsInf(cfg.FPS, 0) {
		cfg.FPS = DefaultFPS
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.DevRoot == "" {
		cfg.DevRoot = DefaultDevRoot
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return cfg
}

// Open opens the source cfg names. "test" is the synthetic source; "" and
// "auto" take the first capture device under DevRoot that offers a usable
// format, or fall back to the synthetic source (and log it); anything else
// is a device path. Real devices are wrapped in a Resilient source that
// reopens them after stalls and unplugs. The first open is synchronous so
// that configuration errors (an unsupported pixel format, a missing device)
// are reported here rather than retried forever.
func Open(cfg Config) (Source, error) {
	cfg = cfg.withDefaults()
	switch cfg.Device {
	case DeviceTest:
		return openTest(cfg)
	case "", DeviceAuto:
		return openAuto(cfg)
	default:
		return openResilientDevice(cfg, func(context.Context) (Source, error) {
			return openDevice(cfg.Device, cfg)
		})
	}
}

// openAuto opens the first usable capture device, or the test source.
func openAuto(cfg Config) (Source, error) {
	path, err := firstUsableDevice(cfg.DevRoot)
	if err != nil || path == "" {
		cfg.Logger.Warn("no capture device found, using the synthetic test source",
			"dev_root", cfg.DevRoot, "err", err)
		return openTest(cfg)
	}
	cfg.Logger.Info("capture device found", "device", path)
	// Rescan on every reopen: a replugged camera may come back under
	// another node name.
	return openResilientDevice(cfg, func(context.Context) (Source, error) {
		p, err := firstUsableDevice(cfg.DevRoot)
		if err != nil {
			return nil, err
		}
		if p == "" {
			return nil, fmt.Errorf("no capture device under %s", cfg.DevRoot)
		}
		return openDevice(p, cfg)
	})
}

// openTest opens the synthetic source on the real clock.
func openTest(cfg Config) (Source, error) {
	s, err := newTestSource(cfg, systemClock{})
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return s, nil
}

// firstUsableDevice returns the path of the first capture device that
// offers a format camagent can use, or "" when there is none.
func firstUsableDevice(devRoot string) (string, error) {
	devs, err := ListDevices(devRoot)
	if err != nil {
		return "", err
	}
	for _, d := range devs {
		if _, ok := bestFormat(d.PixelFormats()); ok {
			return d.Path, nil
		}
	}
	return "", nil
}

// openResilientDevice opens once synchronously, then hands the source to
// a Resilient wrapper that reopens it through open.
func openResilientDevice(cfg Config, open func(context.Context) (Source, error)) (Source, error) {
	first, err := open(context.Background())
	if err != nil {
		return nil, err
	}
	return NewResilient(open, ResilientOptions{
		First:        first,
		StallTimeout: cfg.StallTimeout,
		Logger:       cfg.Logger,
	}), nil
}

// String renders f as ParseFormat reads it, e.g. "MJPG:1280x720@30".
func (f Format) String() string {
	var b strings.Builder
	if f.Pixel != "" {
		b.WriteString(string(f.Pixel))
		b.WriteByte(':')
	}
	fmt.Fprintf(&b, "%dx%d", f.Width, f.Height)
	if f.FPS > 0 {
		b.WriteByte('@')
		b.WriteString(strconv.FormatFloat(f.FPS, 'f', -1, 64))
	}
	return b.String()
}

// Limits enforced by ParseFormat.
const (
	maxDimension = 16384
	maxFPS       = 1000
)

// pixelAliases are the names ParseFormat accepts besides the fourccs.
var pixelAliases = map[string]media.PixelFormat{
	"I420":  media.PixI420,
	"MJPEG": media.PixMJPEG,
}

// ParseFormat reads "[PIXEL:]WIDTHxHEIGHT[@FPS]", for example "1280x720",
// "640x480@15" or "mjpg:1920x1080@29.97". PIXEL is a fourcc camagent
// supports (case-insensitive; I420 and MJPEG are accepted as aliases).
// Omitted parts are left zero.
func ParseFormat(s string) (Format, error) {
	var f Format
	rest := s
	if pix, size, ok := strings.Cut(rest, ":"); ok {
		p, err := parsePixel(pix)
		if err != nil {
			return Format{}, fmt.Errorf("format %q: %w", s, err)
		}
		f.Pixel, rest = p, size
	}
	size, rate, hasRate := strings.Cut(rest, "@")
	w, h, ok := strings.Cut(size, "x")
	if !ok {
		return Format{}, fmt.Errorf("format %q: size must be WIDTHxHEIGHT", s)
	}
	var err error
	if f.Width, err = parseDimension(w); err != nil {
		return Format{}, fmt.Errorf("format %q: width: %w", s, err)
	}
	if f.Height, err = parseDimension(h); err != nil {
		return Format{}, fmt.Errorf("format %q: height: %w", s, err)
	}
	if hasRate {
		if f.FPS, err = parseFPS(rate); err != nil {
			return Format{}, fmt.Errorf("format %q: rate: %w", s, err)
		}
	}
	return f, nil
}

// ParsePixelFormat reads a pixel format name as ParseFormat does.
func ParsePixelFormat(s string) (media.PixelFormat, error) { return parsePixel(s) }

func parsePixel(s string) (media.PixelFormat, error) {
	up := strings.ToUpper(s)
	if p, ok := pixelAliases[up]; ok {
		return p, nil
	}
	if _, ok := FourCCOf(media.PixelFormat(up)); ok {
		return media.PixelFormat(up), nil
	}
	return "", fmt.Errorf("unsupported pixel format %q", s)
}

func parseDimension(s string) (int, error) {
	// ParseUint rejects signs, spaces and other decoration Atoi would allow.
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n == 0 || n > maxDimension {
		return 0, fmt.Errorf("%d is not between 1 and %d", n, maxDimension)
	}
	return int(n), nil
}

func parseFPS(s string) (float64, error) {
	fps, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "eEpPxX_iInN") {
		// Plain decimals only: no exponents, hex floats, Inf or NaN.
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	if !(fps > 0 && fps <= maxFPS) {
		return 0, fmt.Errorf("%g is not between 0 and %d", fps, maxFPS)
	}
	return fps, nil
}

// Package encode turns captured frames into encoded access units: H.264 via
// openh264 (cgo) or camera passthrough, MJPEG via image/jpeg or passthrough.
package encode

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// Config selects the output of an Encoder.
type Config struct {
	Codec media.Codec
	// Bitrate is the H.264 target in bits/s; 0 picks about 0.1 bit per pixel.
	Bitrate int
	// KeyframeInterval is the H.264 IDR period in frames; 0 means 2 s worth.
	KeyframeInterval int
	// Width and Height are the output size; 0 means the source size. Raw and
	// MJPEG sources are scaled (nearest neighbour); passthrough cannot scale.
	Width, Height int
	// FPS is the nominal frame rate, used for rate control and announced in
	// the track; 0 means 30.
	FPS float64
	// JPEGQuality is the MJPEG encoder quality, 1 to 100; 0 means 80.
	JPEGQuality int
	Logger      *slog.Logger
}

// Encoder encodes frames of one source. Encode is called from one goroutine;
// Track, and ForceKeyFrame where implemented, may be called from any.
type Encoder interface {
	// Encode returns zero or more access units for f. Key is set on IDR
	// frames (every MJPEG frame), PTS counts from the first frame's
	// Timestamp, Captured is copied from f.
	Encode(f media.RawFrame) ([]media.AccessUnit, error)
	// Track describes the output; for H.264 it carries the SPS and PPS once
	// the first key frame has been produced.
	Track() media.Track
	Close() error
}

// KeyFrameForcer is implemented by encoders that can produce an IDR frame on
// request (the software H.264 encoder), so a new viewer need not wait for the
// next scheduled one.
type KeyFrameForcer interface {
	ForceKeyFrame()
}

// Errors returned by New and Encode.
var (
	ErrNoSoftwareH264 = errors.New("software H.264 encoding is unavailable in this build (CGO_ENABLED=0): use codec mjpeg or a camera with native H.264")
	ErrClosed         = errors.New("encoder closed")
)

// SoftwareH264Available reports whether this build links openh264.
func SoftwareH264Available() bool { return softwareH264Available }

// New returns an encoder from frames of format in, sized width x height, to
// cfg.Codec.
func New(cfg Config, in media.PixelFormat, width, height int) (Encoder, error) {
	if width <= 0 || height <= 0 {
		return nil, fmt.Errorf("encode: source size %dx%d", width, height)
	}
	cfg = withDefaults(cfg, width, height)
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("encode: output size %dx%d", cfg.Width, cfg.Height)
	}
	if !knownFormat(in) {
		return nil, fmt.Errorf("encode: unsupported pixel format %q", in)
	}
	passthrough := (in == media.PixH264 && cfg.Codec == media.CodecH264) ||
		(in == media.PixMJPEG && cfg.Codec == media.CodecMJPEG)
	if passthrough && (cfg.Width != width || cfg.Height != height) {
		return nil, fmt.Errorf("encode: %s passthrough cannot scale %dx%d to %dx%d", in, width, height, cfg.Width, cfg.Height)
	}
	switch {
	case cfg.Codec == media.CodecH264 && in == media.PixH264:
		return newH264Passthrough(cfg), nil
	case cfg.Codec == media.CodecMJPEG && in == media.PixMJPEG:
		return newMJPEGPassthrough(cfg), nil
	case cfg.Codec == media.CodecMJPEG && in == media.PixH264:
		return nil, errors.New("encode: cannot transcode camera H.264 to MJPEG")
	case cfg.Codec == media.CodecMJPEG:
		return newMJPEGEncoder(cfg)
	case cfg.Codec == media.CodecH264:
		if cfg.Width%2 != 0 || cfg.Height%2 != 0 {
			return nil, fmt.Errorf("encode: H.264 needs an even size, not %dx%d", cfg.Width, cfg.Height)
		}
		return newSoftwareH264(cfg)
	default:
		return nil, fmt.Errorf("encode: unsupported codec %q", cfg.Codec)
	}
}

func knownFormat(p media.PixelFormat) bool {
	switch p {
	case media.PixYUYV, media.PixNV12, media.PixI420, media.PixMJPEG, media.PixH264:
		return true
	}
	return false
}

func withDefaults(cfg Config, width, height int) Config {
	if cfg.Width == 0 && cfg.Height == 0 {
		cfg.Width, cfg.Height = width, height
	}
	if cfg.FPS <= 0 {
		cfg.FPS = 30
	}
	if cfg.Bitrate <= 0 {
		cfg.Bitrate = int(float64(cfg.Width*cfg.Height) * cfg.FPS / 10)
	}
	if cfg.KeyframeInterval <= 0 {
		cfg.KeyframeInterval = int(2*cfg.FPS + 0.5)
	}
	if cfg.JPEGQuality <= 0 || cfg.JPEGQuality > 100 {
		cfg.JPEGQuality = 80
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// ptsClock turns capture timestamps into presentation times counted from
// the first frame.
type ptsClock struct {
	started bool
	origin  time.Duration
	last    time.Duration
}

// pts returns f's presentation time. It never goes backwards: a driver
// timestamp that does (a clock reset after a USB replug) repeats the last
// value rather than corrupting downstream durations.
func (c *ptsClock) pts(ts time.Duration) time.Duration {
	if !c.started {
		c.started, c.origin = true, ts
	}
	p := ts - c.origin
	if p < c.last {
		p = c.last
	}
	c.last = p
	return p
}

// trackState is the track description, read from other goroutines.
type trackState struct {
	mu sync.Mutex
	t  media.Track
}

func (s *trackState) get() media.Track {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

func (s *trackState) update(fn func(*media.Track)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.t)
}

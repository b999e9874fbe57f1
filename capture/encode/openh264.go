//go:build cgo

package encode

import (
	"fmt"
	"image"
	"sync"
	"sync/atomic"

	"github.com/pion/mediadevices/pkg/codec"
	"github.com/pion/mediadevices/pkg/codec/openh264"
	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"

	"github.com/camagent/camagent/internal/base/media"
)

const softwareH264Available = true

// softwareH264 encodes raw or MJPEG frames with openh264 2.1.1, the static
// library bundled by pion/mediadevices. The library pulls frames from a
// video.Reader; we drive it synchronously by handing it, on each Read, the
// frame just given to Encode.
type softwareH264 struct {
	mu       sync.Mutex // serialises Encode and Close
	enc      codec.ReadCloser
	conv     *i420Converter
	current  image.Image // the frame the reader hands to openh264 next
	forceKey atomic.Bool
	track    trackState
	pack     *h264Packager
	clock    ptsClock
	closed   bool
}

func newSoftwareH264(cfg Config) (Encoder, error) {
	params, err := openh264.NewParams()
	if err != nil {
		return nil, fmt.Errorf("openh264: %w", err)
	}
	params.BitRate = cfg.Bitrate
	params.KeyFrameInterval = cfg.KeyframeInterval // unused by the bridge; IntraPeriod is what counts
	params.IntraPeriod = uint(cfg.KeyframeInterval)
	// With frame skipping on, rate control silently drops frames and Read
	// returns an empty buffer: every frame must come out.
	params.EnableFrameSkip = false
	// One slice per picture: the default size-limited slicing targets RTP
	// packets, which QUIC streams and MP4 samples do not need.
	params.SliceMode = openh264.SMSingleSlice

	e := &softwareH264{conv: newI420Converter(cfg.Width, cfg.Height)}
	e.track.t = media.Track{Codec: media.CodecH264, Width: cfg.Width, Height: cfg.Height, FPS: cfg.FPS}
	e.pack = newH264Packager(cfg.Logger, &e.track)

	reader := video.ReaderFunc(func() (image.Image, func(), error) {
		return e.current, func() {}, nil
	})
	props := prop.Media{Video: prop.Video{Width: cfg.Width, Height: cfg.Height, FrameRate: float32(cfg.FPS)}}
	e.enc, err = params.BuildVideoEncoder(reader, props)
	if err != nil {
		return nil, fmt.Errorf("openh264: %w", err)
	}
	return e, nil
}

func (e *softwareH264) Encode(f media.RawFrame) ([]media.AccessUnit, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	img, err := e.conv.convert(f)
	if err != nil {
		return nil, fmt.Errorf("openh264: %w", err)
	}
	if e.forceKey.Swap(false) {
		if kf, ok := e.enc.Controller().(codec.KeyFrameController); ok {
			_ = kf.ForceKeyFrame() // only sets a flag; cannot fail
		}
	}
	e.current = img
	data, release, err := e.enc.Read()
	e.current = nil // do not keep the caller's frame alive
	if err != nil {
		return nil, fmt.Errorf("openh264: %w", err)
	}
	release()
	pts := e.clock.pts(f.Timestamp)
	if len(data) == 0 {
		return nil, nil
	}
	aus, err := e.pack.pack(data, pts, f.Captured)
	if err != nil {
		return nil, fmt.Errorf("openh264 output: %w", err)
	}
	return aus, nil
}

// ForceKeyFrame makes the next encoded frame an IDR. Safe from any goroutine:
// the request is applied by the next Encode, since the library's own flag is
// not synchronised.
func (e *softwareH264) ForceKeyFrame() { e.forceKey.Store(true) }

func (e *softwareH264) Track() media.Track { return e.track.get() }

func (e *softwareH264) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.enc.Close()
}

package encode

import (
	"bytes"
	"errors"
	"fmt"
	"image/jpeg"

	"github.com/camagent/camagent/internal/base/media"
)

// mjpegPassthrough forwards camera JPEGs untouched: every frame is a key
// frame.
type mjpegPassthrough struct {
	clock  ptsClock
	track  media.Track
	closed bool
}

func newMJPEGPassthrough(cfg Config) *mjpegPassthrough {
	return &mjpegPassthrough{track: media.Track{Codec: media.CodecMJPEG, Width: cfg.Width, Height: cfg.Height, FPS: cfg.FPS}}
}

// jpegSOI is the start-of-image marker every JPEG begins with.
var jpegSOI = []byte{0xff, 0xd8}

func (e *mjpegPassthrough) Encode(f media.RawFrame) ([]media.AccessUnit, error) {
	if e.closed {
		return nil, ErrClosed
	}
	if !bytes.HasPrefix(f.Data, jpegSOI) {
		// UVC cameras occasionally hand over a truncated or empty buffer.
		return nil, errors.New("mjpeg: frame does not start with a JPEG SOI marker")
	}
	// RawFrame.Data belongs to us now, so it can be passed on without a copy.
	return []media.AccessUnit{{
		Codec: media.CodecMJPEG, Data: f.Data, Key: true,
		PTS: e.clock.pts(f.Timestamp), Captured: f.Captured,
	}}, nil
}

func (e *mjpegPassthrough) Track() media.Track { return e.track }
func (e *mjpegPassthrough) Close() error       { e.closed = true; return nil }

// mjpegEncoder compresses raw frames with image/jpeg.
type mjpegEncoder struct {
	conv   *i420Converter
	opts   jpeg.Options
	clock  ptsClock
	track  media.Track
	buf    bytes.Buffer
	closed bool
}

func newMJPEGEncoder(cfg Config) (*mjpegEncoder, error) {
	return &mjpegEncoder{
		conv:  newI420Converter(cfg.Width, cfg.Height),
		opts:  jpeg.Options{Quality: cfg.JPEGQuality},
		track: media.Track{Codec: media.CodecMJPEG, Width: cfg.Width, Height: cfg.Height, FPS: cfg.FPS},
	}, nil
}

func (e *mjpegEncoder) Encode(f media.RawFrame) ([]media.AccessUnit, error) {
	if e.closed {
		return nil, ErrClosed
	}
	img, err := e.conv.convert(f)
	if err != nil {
		return nil, fmt.Errorf("mjpeg: %w", err)
	}
	e.buf.Reset()
	if err := jpeg.Encode(&e.buf, img, &e.opts); err != nil {
		return nil, fmt.Errorf("mjpeg: %w", err)
	}
	// The buffer is reused, so hand out a copy sized exactly.
	data := bytes.Clone(e.buf.Bytes())
	return []media.AccessUnit{{
		Codec: media.CodecMJPEG, Data: data, Key: true,
		PTS: e.clock.pts(f.Timestamp), Captured: f.Captured,
	}}, nil
}

func (e *mjpegEncoder) Track() media.Track { return e.track }
func (e *mjpegEncoder) Close() error       { e.closed = true; return nil }

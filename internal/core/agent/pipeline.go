package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/camagent/camagent/capture"
	"github.com/camagent/camagent/capture/encode"
	"github.com/camagent/camagent/internal/base/media"
)

// captureLoop reads frames, encodes them and publishes the access units to
// the hub. A change of the source's format (a different camera plugged in)
// rebuilds the encoder.
func (a *Agent) captureLoop(ctx context.Context) error {
	src, err := a.openSource()
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer src.Close()
	var (
		enc    encode.Encoder
		format capture.Format
		track  media.Track
	)
	defer func() {
		if enc != nil {
			enc.Close()
		}
	}()
	for {
		frame, err := src.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("capture: %w", err)
		}
		if enc == nil || src.Format() != format {
			if enc != nil {
				enc.Close()
			}
			format = src.Format()
			if enc, err = a.newEncoder(format); err != nil {
				return err
			}
		}
		a.rec.observe(frame) // motion and stills, before the encoder owns the frame
		aus, err := enc.Encode(frame)
		if err != nil {
			// One bad frame (a corrupt MJPEG from a flaky USB link) must not
			// stop the camera.
			a.log.Warn("encode failed; frame dropped", "seq", frame.Seq, "err", err)
			continue
		}
		if !frame.Format.Compressed() {
			// Encoders, motion and stills are done with a raw frame once
			// Encode returns (motion copies what it keeps); compressed
			// frames may live on as the access units themselves.
			capture.Recycle(src, frame.Data)
		}
		if t := enc.Track(); trackChanged(track, t) {
			track = t
			a.hub.SetTrack(t)
			a.rec.setTrack(t)
		}
		for _, au := range aus {
			a.hub.Publish(au)
			a.rec.write(au)
		}
		if len(aus) > 0 {
			a.frames.Add(uint64(len(aus)))
			a.lastFrame.Store(a.now().UnixNano())
			a.readyOnce.Do(func() {
				close(a.ready)
				a.log.Info("streaming", "track", fmt.Sprintf("%s %dx%d@%g", track.Codec, track.Width, track.Height, track.FPS))
			})
		}
	}
}

func (a *Agent) newEncoder(f capture.Format) (encode.Encoder, error) {
	enc, err := encode.New(encode.Config{
		Codec:            media.Codec(a.cfg.Encode.Codec),
		Bitrate:          a.cfg.Encode.Bitrate,
		KeyframeInterval: a.cfg.Encode.KeyframeInterval,
		Width:            a.cfg.Encode.Width,
		Height:           a.cfg.Encode.Height,
		FPS:              f.FPS,
		Logger:           a.log.With("component", "encode"),
	}, f.Pixel, f.Width, f.Height)
	if errors.Is(err, encode.ErrNoSoftwareH264) {
		return nil, fmt.Errorf("%w (source delivers %s; set encode.codec: mjpeg)", err, f.Pixel)
	}
	if err != nil {
		return nil, fmt.Errorf("encoder for %s: %w", f, err)
	}
	a.log.Info("encoder ready", "input", f.String(), "codec", a.cfg.Encode.Codec)
	return enc, nil
}

// trackChanged reports whether viewers must be told about t. New parameter
// set bytes alone do not count: openh264 gives every IDR a new SPS/PPS ID,
// and key frames carry their parameter sets in band anyway, so a CATALOG
// per group of pictures would tell viewers nothing.
func trackChanged(old, t media.Track) bool {
	return old.Codec != t.Codec || old.Width != t.Width || old.Height != t.Height ||
		old.FPS != t.FPS || (len(old.SPS) == 0) != (len(t.SPS) == 0)
}

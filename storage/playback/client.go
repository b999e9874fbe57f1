package playback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/fmp4"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/storage/recwire"
)

// Client asks a camera for recordings over a connection dialled with ALPN.
type Client struct{ conn *quic.Conn }

// NewClient uses conn, which must have negotiated ALPN.
func NewClient(conn *quic.Conn) *Client { return &Client{conn: conn} }

// request opens a stream, sends req and reads the response header.
func (c *Client) request(ctx context.Context, req recwire.Request) (*quic.Stream, recwire.Response, error) {
	var resp recwire.Response
	str, err := c.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, resp, fmt.Errorf("playback: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		str.CancelRead(errCodeCancelled)
		str.CancelWrite(errCodeCancelled)
	})
	if err := recwire.WriteMessage(str, req); err != nil {
		stop()
		return nil, resp, fmt.Errorf("playback: %w", err)
	}
	str.Close() // one request per stream
	if err := recwire.ReadMessage(str, &resp); err != nil {
		stop()
		return nil, resp, fmt.Errorf("playback: %w", err)
	}
	if resp.Error != "" {
		stop()
		str.CancelRead(0)
		return nil, resp, fmt.Errorf("camera: %s", resp.Error)
	}
	return str, resp, nil
}

// List returns the recordings and events meeting [from, to) (zero: open).
func (c *Client) List(ctx context.Context, from, to time.Time) (recwire.Response, error) {
	str, resp, err := c.request(ctx, recwire.Request{Op: recwire.OpList, From: from, To: to})
	if err == nil {
		str.CancelRead(0)
	}
	return resp, err
}

// Play calls fn for each recorded access unit from the key frame at or
// before from until to. To seek, cancel ctx (or return an error from fn)
// and Play again from elsewhere.
func (c *Client) Play(ctx context.Context, from, to time.Time, fn func(media.AccessUnit) error) error {
	str, _, err := c.request(ctx, recwire.Request{Op: recwire.OpPlay, From: from, To: to})
	if err != nil {
		return err
	}
	defer str.CancelRead(errCodeCancelled)
	var origin time.Time
	for {
		f, err := recwire.ReadFrame(str)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("playback: %w", err)
		}
		if origin.IsZero() {
			origin = f.Captured
		}
		au := media.AccessUnit{Codec: media.CodecH264, Data: f.Data, Key: f.Key, Captured: f.Captured, PTS: f.Captured.Sub(origin)}
		if err := fn(au); err != nil {
			return err
		}
	}
}

// Export writes the recording between from and to as fragmented MP4 and
// returns the number of frames and the time of the first.
func (c *Client) Export(ctx context.Context, from, to time.Time, w io.Writer) (frames int, first time.Time, err error) {
	mw, err := fmp4.NewWriter(w, media.Track{Codec: media.CodecH264}, fmp4.Options{})
	if err != nil {
		return 0, first, err
	}
	err = c.Play(ctx, from, to, func(au media.AccessUnit) error {
		if frames == 0 {
			first = au.Captured
		}
		frames++
		return mw.WriteAccessUnit(au)
	})
	if cerr := mw.Close(); err == nil {
		err = cerr
	}
	if err == nil && frames == 0 {
		err = errors.New("playback: nothing recorded in that range")
	}
	return frames, first, err
}

// Still returns a JPEG of the camera's current picture.
func (c *Client) Still(ctx context.Context) ([]byte, error) {
	return c.blob(ctx, recwire.Request{Op: recwire.OpStill})
}

// EventSnapshot returns the JPEG taken when event id began.
func (c *Client) EventSnapshot(ctx context.Context, id string) ([]byte, error) {
	return c.blob(ctx, recwire.Request{Op: recwire.OpEventSnapshot, ID: id})
}

func (c *Client) blob(ctx context.Context, req recwire.Request) ([]byte, error) {
	str, resp, err := c.request(ctx, req)
	if err != nil {
		return nil, err
	}
	defer str.CancelRead(0)
	if resp.Size < 0 || resp.Size > recwire.MaxFrame {
		return nil, recwire.ErrTooLarge
	}
	b := make([]byte, resp.Size)
	if _, err := io.ReadFull(str, b); err != nil {
		return nil, fmt.Errorf("playback: %w", err)
	}
	return b, nil
}

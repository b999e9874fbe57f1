package capture

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"strconv"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// The synthetic source draws colour bars over a luma ramp, a checkered box
// bouncing across the picture, and a label with the frame's capture time
// (UTC, HH:MM:SS.mmm) and number in large digits, so that a viewer can read
// the end-to-end latency off the screen and encoders see real motion.
//
// The background is drawn once. Each frame restores the box's previous
// rectangle from it, draws the box and the label, and converts the
// picture to the wanted layout, so the per-frame cost is one pass over
// the output plus the small moving parts.

// Colours of the test pattern (BT.601 limited range, 75% bars).
var (
	barColours = []ycbcr{
		{180, 128, 128}, // white
		{162, 44, 142},  // yellow
		{131, 156, 44},  // cyan
		{112, 72, 58},   // green
		{84, 184, 198},  // magenta
		{65, 100, 212},  // red
		{35, 212, 114},  // blue
		{16, 128, 128},  // black
	}
	boxColour   = ycbcr{0, 90, 240} // luma is checkered
	labelColour = ycbcr{16, 128, 128}
)

const (
	lumaDark  = 16
	lumaLight = 235
	// labelChars is the width of the longest label line, "HH:MM:SS.mmm".
	labelChars  = 12
	jpegQuality = 80
)

// testSource is the synthetic Source behind Device "test". Frames are
// stamped with their due time: Captured is the wall-clock due time and
// Timestamp the due time relative to the start of the source (there is no
// kernel clock to follow).
type testSource struct {
	format   Format
	clock    Clock
	unpaced  bool
	interval float64 // nanoseconds per frame
	start    time.Time

	slot       uint64 // next frame number
	background yuv420
	picture    yuv420
	box        rect // where the box was drawn last
	boxSize    int
	scale      int // font pixel size of the label
	jpegBuf    bytes.Buffer
	buffers    bufferPool // raw frame buffers handed back by Recycle

	closing  context.Context
	closeNow context.CancelFunc
}

// newTestSource builds the synthetic source for cfg (defaults applied).
func newTestSource(cfg Config, clock Clock) (*testSource, error) {
	cfg = cfg.withDefaults()
	pix := cfg.Pixel
	if pix == "" {
		pix = media.PixI420
	}
	switch pix {
	case media.PixI420, media.PixNV12, media.PixYUYV, media.PixMJPEG:
	default:
		return nil, fmt.Errorf("test source: cannot produce pixel format %q", pix)
	}
	if cfg.Width > maxDimension || cfg.Height > maxDimension {
		return nil, fmt.Errorf("test source: %dx%d is larger than %dx%d", cfg.Width, cfg.Height, maxDimension, maxDimension)
	}
	s := &testSource{
		format:   Format{Pixel: pix, Width: cfg.Width, Height: cfg.Height, FPS: cfg.FPS},
		clock:    clock,
		unpaced:  cfg.Unpaced,
		interval: float64(time.Second) / cfg.FPS,
		start:    clock.Now(),
		boxSize:  max(2, min(cfg.Width, cfg.Height)/6&^1),
		scale:    max(1, min(cfg.Width/80, cfg.Height/90)),
	}
	s.closing, s.closeNow = context.WithCancel(context.Background())
	s.background = drawBackground(cfg.Width, cfg.Height)
	s.picture = newYUV420(cfg.Width, cfg.Height)
	s.picture.copyRect(s.background, rect{0, 0, cfg.Width, cfg.Height})
	cfg.Logger.Info("synthetic test source", "format", s.format.String(), "unpaced", s.unpaced)
	return s, nil
}

func (s *testSource) Format() Format { return s.format }

// Close makes Read return ErrClosed; it may be called concurrently.
func (s *testSource) Close() error {
	s.closeNow()
	return nil
}

// Read waits for the next frame's due time, then draws and returns it.
func (s *testSource) Read(ctx context.Context) (media.RawFrame, error) {
	if s.closing.Err() != nil {
		return media.RawFrame{}, ErrClosed
	}
	seq, due, err := s.nextSlot(ctx)
	if err != nil {
		return media.RawFrame{}, err
	}
	s.draw(seq, due)
	data, stride, err := s.encode()
	if err != nil {
		return media.RawFrame{}, err
	}
	return media.RawFrame{
		Format:    s.format.Pixel,
		Width:     s.format.Width,
		Height:    s.format.Height,
		Stride:    stride,
		Data:      data,
		Seq:       seq,
		Timestamp: due.Sub(s.start),
		Captured:  due,
	}, nil
}

// nextSlot picks the frame number and due time of the next frame and
// waits for it. Due times are computed from the start time, not from the
// previous frame, so pacing does not drift. A reader that falls behind by a
// whole interval or more gets the latest due frame and a gap in the
// sequence numbers, as a camera would drop frames.
func (s *testSource) nextSlot(ctx context.Context) (uint64, time.Time, error) {
	now := s.clock.Now()
	if s.unpaced {
		seq := s.slot
		s.slot++
		return seq, now, nil
	}
	due := s.slotTime(s.slot)
	if wait := due.Sub(now); wait > 0 {
		if err := sleep(ctx, s.clock, wait, s.closing.Done()); err != nil {
			return 0, time.Time{}, err
		}
	} else if float64(-wait) >= s.interval {
		s.slot = uint64(float64(now.Sub(s.start)) / s.interval)
		due = s.slotTime(s.slot)
	}
	seq := s.slot
	s.slot++
	return seq, due, nil
}

func (s *testSource) slotTime(n uint64) time.Time {
	return s.start.Add(time.Duration(float64(n) * s.interval))
}

// drawBackground paints the static part: bars on the top two thirds, a
// luma ramp below.
func drawBackground(w, h int) yuv420 {
	bg := newYUV420(w, h)
	barsH := h * 2 / 3
	for i, c := range barColours {
		x0, x1 := w*i/len(barColours), w*(i+1)/len(barColours)
		bg.fill(rect{x0, 0, x1, barsH}, c)
	}
	bg.fill(rect{0, barsH, w, h}, ycbcr{0, 128, 128})
	for x := 0; x < w; x++ {
		v := byte(lumaDark + (lumaLight-lumaDark)*x/max(1, w-1))
		bg.y.fill(x, barsH, x+1, h, v)
	}
	return bg
}

// draw updates the picture for frame seq captured at t.
func (s *testSource) draw(seq uint64, t time.Time) {
	s.picture.copyRect(s.background, s.box)
	s.box = s.boxAt(seq)
	s.drawBox(s.box)
	s.drawLabel(seq, t)
}

// boxAt places the box for frame seq: it bounces diagonally, crossing the
// picture in about 160 frames whatever the size.
func (s *testSource) boxAt(seq uint64) rect {
	w, h := s.format.Width, s.format.Height
	x := bounce(seq*uint64(max(1, w/160)), w-s.boxSize) &^ 1
	y := bounce(seq*uint64(max(1, h/120)), h-s.boxSize) &^ 1
	return rect{x, y, x + s.boxSize, y + s.boxSize}
}

// bounce folds position p into [0, span] like a ball between two walls.
func bounce(p uint64, span int) int {
	if span <= 0 {
		return 0
	}
	period := uint64(2 * span)
	q := int(p % period)
	if q > span {
		q = 2*span - q
	}
	return q
}

// drawBox paints the box: a colour with checkered luma, so that encoders
// have edges to track.
func (s *testSource) drawBox(r rect) {
	s.picture.fill(r, boxColour)
	cell := max(1, s.boxSize/4)
	for cy := r.y0; cy < r.y1; cy += cell {
		for cx := r.x0; cx < r.x1; cx += cell {
			v := byte(lumaDark)
			if ((cx-r.x0)/cell+(cy-r.y0)/cell)%2 == 0 {
				v = lumaLight
			}
			s.picture.y.fill(cx, cy, min(cx+cell, r.x1), min(cy+cell, r.y1), v)
		}
	}
}

// labelOrigin is the top-left corner of the label's text.
func (s *testSource) labelOrigin() (int, int) { return 2 * s.scale, 2 * s.scale }

// drawLabel paints the clock and frame number on a dark panel.
func (s *testSource) drawLabel(seq uint64, t time.Time) {
	x, y := s.labelOrigin()
	sc := s.scale
	panel := rect{x - sc, y - sc, x + labelChars*cellW*sc, y + 2*cellH*sc}
	s.picture.fill(panel, labelColour)
	drawText(s.picture.y, x, y, sc, clockText(t), lumaLight)
	drawText(s.picture.y, x, y+cellH*sc, sc, frameText(seq), lumaLight)
}

// clockText renders t as HH:MM:SS.mmm in UTC.
func clockText(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// frameText renders a frame number as #NNNNNNN (the last seven digits).
func frameText(seq uint64) string {
	digits := strconv.FormatUint(seq%10_000_000, 10)
	return "#" + "0000000"[len(digits):] + digits
}

// encode converts the picture to the output layout in a fresh buffer and
// returns it with the stride of its first plane (0 for MJPEG).
func (s *testSource) encode() ([]byte, int, error) {
	p := s.picture
	switch s.format.Pixel {
	case media.PixNV12:
		return toNV12(p, s.buffers.get(len(p.buf))), p.y.stride, nil
	case media.PixYUYV:
		data, stride := toYUYV(p)
		return data, stride, nil
	case media.PixMJPEG:
		data, err := s.toJPEG()
		return data, 0, err
	default:
		return toI420(p, s.buffers.get(len(p.buf))), p.y.stride, nil
	}
}

// Recycle takes back a frame buffer for a later I420 or NV12 frame.
func (s *testSource) Recycle(data []byte) { s.buffers.put(data) }

// toI420 copies the picture into dst, which has the picture's length.
func toI420(p yuv420, dst []byte) []byte {
	copy(dst, p.buf)
	return dst
}

// toNV12 converts the picture into dst, which has the picture's length.
func toNV12(p yuv420, dst []byte) []byte {
	out := dst
	copy(out, p.buf) // Y is already in place
	uv := out[len(p.y.pix):]
	cb, cr := p.u.pix, p.v.pix[:len(p.u.pix)]
	for i := range cb {
		pair := uv[2*i : 2*i+2 : 2*i+2]
		pair[0], pair[1] = cb[i], cr[i]
	}
	return out
}

// toYUYV packs 4:2:2 by repeating each chroma row for two luma rows. An
// odd last column is padded by repeating its luma.
func toYUYV(p yuv420) ([]byte, int) {
	pairs := p.u.w
	stride := 4 * pairs
	out := make([]byte, stride*p.y.h)
	for y := 0; y < p.y.h; y++ {
		row := out[y*stride : (y+1)*stride]
		lum := p.y.pix[y*p.y.stride : y*p.y.stride+p.y.w]
		cb := p.u.pix[(y/2)*p.u.stride:][:pairs]
		cr := p.v.pix[(y/2)*p.v.stride:][:pairs]
		whole := p.y.w / 2
		for i := 0; i < whole; i++ {
			px := row[4*i : 4*i+4 : 4*i+4] // one bounds check per pair
			lp := lum[2*i : 2*i+2 : 2*i+2]
			px[0], px[1], px[2], px[3] = lp[0], cb[i], lp[1], cr[i]
		}
		if whole < pairs {
			last := lum[len(lum)-1]
			row[4*whole], row[4*whole+1], row[4*whole+2], row[4*whole+3] = last, cb[whole], last, cr[whole]
		}
	}
	return out, stride
}

// toJPEG encodes the picture as a baseline 4:2:0 JPEG.
func (s *testSource) toJPEG() ([]byte, error) {
	p := s.picture
	img := &image.YCbCr{
		Y: p.y.pix, Cb: p.u.pix, Cr: p.v.pix,
		YStride: p.y.stride, CStride: p.u.stride,
		SubsampleRatio: image.YCbCrSubsampleRatio420,
		Rect:           image.Rect(0, 0, p.y.w, p.y.h),
	}
	s.jpegBuf.Reset()
	if err := jpeg.Encode(&s.jpegBuf, img, &jpeg.Options{Quality: jpegQuality}); err != nil {
		return nil, fmt.Errorf("test source: jpeg: %w", err)
	}
	return bytes.Clone(s.jpegBuf.Bytes()), nil
}

//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"

	"github.com/camagent/camagent/internal/base/media"
)

const (
	// bufferCount is the number of mmap buffers: enough to ride out a
	// reader that is late by a frame or two without making frames old.
	bufferCount = 4
	// waitSeconds is how long one poll for a frame lasts. webcam only
	// takes whole seconds; a cancelled context is noticed after at most
	// this long.
	waitSeconds = 1
	// maxFrameAge bounds a believable driver timestamp; anything older
	// (or in the future) means a clock mix-up and is ignored.
	maxFrameAge = 10 * time.Second
	// bufFlagError marks a buffer the driver filled only partly.
	bufFlagError = 0x00000040
)

// v4l2Source captures from one V4L2 device through blackjack/webcam.
type v4l2Source struct {
	buffers bufferPool // frame copies handed back by Recycle
	path    string
	cam     *webcam.Webcam
	format  Format
	stride  int
	log     *slog.Logger

	// ctlFD is the descriptor used for the ioctls webcam lacks: webcam's
	// own when it could be found, else ownFD, a second handle on the node.
	ctlFD int
	ownFD int

	mu     sync.Mutex // serialises Read and Close: Close unmaps the buffers Read copies from
	closed bool

	// Sequence bookkeeping: Seq counts from 0 at the first frame and
	// follows the driver's sequence numbers when QUERYBUF provides them.
	seq         uint64
	started     bool
	lastDrvSeq  uint32
	damaged     uint64
	queryBufErr error // set once QUERYBUF failed; timestamps then fall back to read time
}

// openDevice opens path and negotiates cfg's format on it.
func openDevice(path string, cfg Config) (Source, error) {
	cfg = cfg.withDefaults()
	caps, err := queryCapPath(path)
	if err != nil {
		return nil, err
	}
	if !caps.isStreamingCapture() {
		return nil, fmt.Errorf("%s: %w (%s)", path, errNotCapture, describeCaps(caps.nodeCaps()))
	}
	cam, err := webcam.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &v4l2Source{path: path, cam: cam, log: cfg.Logger.With("device", path), ctlFD: -1, ownFD: -1}
	if err := s.start(cfg); err != nil {
		s.release()
		return nil, err
	}
	s.log.Info("capture started", "format", s.format.String(), "stride", s.stride,
		"card", cString(caps.Card[:]), "driver", cString(caps.Driver[:]))
	return s, nil
}

// start negotiates the format and rate and starts streaming.
func (s *v4l2Source) start(cfg Config) error {
	code, err := s.choosePixel(cfg.Pixel)
	if err != nil {
		return err
	}
	if _, _, _, err := s.cam.SetImageFormat(webcam.PixelFormat(code), uint32(cfg.Width), uint32(cfg.Height)); err != nil {
		return fmt.Errorf("%s: set format %s %dx%d: %w", s.path, code, cfg.Width, cfg.Height, err)
	}
	if err := s.findControlFD(); err != nil {
		return err
	}
	if err := s.readBackFormat(code); err != nil {
		return err
	}
	s.format.FPS = s.negotiateRate(cfg.FPS)
	if err := s.cam.SetBufferCount(bufferCount); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	if err := s.cam.StartStreaming(); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	return nil
}

// choosePixel returns the code of the wanted format, or of the best one
// offered when want is "".
func (s *v4l2Source) choosePixel(want media.PixelFormat) (FourCC, error) {
	var offered []media.PixelFormat
	var all []string
	for code := range s.cam.GetSupportedFormats() {
		all = append(all, FourCC(code).String())
		if p, ok := FourCC(code).PixelFormat(); ok {
			offered = append(offered, p)
		}
	}
	slices.Sort(all)
	if want == "" {
		best, ok := bestFormat(offered)
		if !ok {
			return 0, fmt.Errorf("%s: no usable pixel format among %v", s.path, all)
		}
		want = best
	} else if !slices.Contains(offered, want) {
		return 0, fmt.Errorf("%s: pixel format %s not offered (device has %v)", s.path, want, all)
	}
	code, _ := FourCCOf(want)
	return code, nil
}

// findControlFD finds a descriptor for the extra ioctls. QUERYBUF must go
// through the streaming handle on uvcvideo (other handles get EBUSY), and
// webcam does not export it, so its unexported fd field is read by
// reflection and trusted only if fstat shows it is this very device. If
// that fails (another webcam version), a second handle still serves
// G_FMT everywhere and QUERYBUF on videobuf2 drivers.
func (s *v4l2Source) findControlFD() error {
	if fd, ok := webcamFD(s.cam); ok {
		if same, err := sameDevice(fd, s.path); err == nil && same {
			s.ctlFD = fd
			return nil
		}
	}
	fd, err := unix.Open(s.path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	s.log.Debug("webcam descriptor not found, using a second handle")
	s.ownFD, s.ctlFD = fd, fd
	return nil
}

// webcamFD reads webcam.Webcam's unexported fd field without unsafe.
func webcamFD(cam *webcam.Webcam) (int, bool) {
	v := reflect.ValueOf(cam).Elem().FieldByName("fd")
	if !v.IsValid() || v.Kind() != reflect.Uintptr {
		return -1, false
	}
	return int(v.Uint()), true
}

// readBackFormat asks the driver what it settled on: S_FMT may adjust the
// size (and webcam reports the request, not the result).
func (s *v4l2Source) readBackFormat(want FourCC) error {
	pix, err := getFormat(s.ctlFD)
	if err != nil {
		return fmt.Errorf("%s: VIDIOC_G_FMT: %w", s.path, err)
	}
	got := FourCC(pix.PixelFormat)
	p, ok := got.PixelFormat()
	if got != want || !ok {
		return fmt.Errorf("%s: asked for %s, driver chose %s", s.path, want, got)
	}
	if pix.Width == 0 || pix.Height == 0 {
		return fmt.Errorf("%s: driver reports a %dx%d frame", s.path, pix.Width, pix.Height)
	}
	s.format = Format{Pixel: p, Width: int(pix.Width), Height: int(pix.Height)}
	if !p.Compressed() {
		s.stride = int(pix.BytesPerLine)
	}
	return nil
}

// negotiateRate asks for fps and returns what the driver reports. Some
// drivers cannot change the rate; that is logged, not fatal.
func (s *v4l2Source) negotiateRate(fps float64) float64 {
	if err := s.cam.SetFramerate(float32(fps)); err != nil {
		s.log.Warn("cannot set frame rate", "fps", fps, "err", err)
	}
	got, err := s.cam.GetFramerate()
	if err != nil || got <= 0 || math.IsInf(float64(got), 0) {
		return fps
	}
	// webcam computes the rate in float32; round to what drivers mean.
	return math.Round(float64(got)*1000) / 1000
}

func (s *v4l2Source) Format() Format { return s.format }

// Recycle takes back a frame buffer for a later frame's copy.
func (s *v4l2Source) Recycle(data []byte) { s.buffers.put(data) }

// Read waits for the next frame. It returns an error wrapping ENODEV when
// the device was unplugged; the context is checked between polls.
func (s *v4l2Source) Read(ctx context.Context) (media.RawFrame, error) {
	for {
		if err := ctx.Err(); err != nil {
			return media.RawFrame{}, err
		}
		frame, ok, err := s.readOnce()
		if err != nil || ok {
			return frame, err
		}
	}
}

// readOnce polls for one frame for up to waitSeconds. ok is false when
// there was none (or only a damaged one) and the caller should poll again.
func (s *v4l2Source) readOnce() (frame media.RawFrame, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return media.RawFrame{}, false, ErrClosed
	}
	if err := s.cam.WaitForFrame(waitSeconds); err != nil {
		var timeout *webcam.Timeout
		if errors.As(err, &timeout) {
			return media.RawFrame{}, false, nil
		}
		return media.RawFrame{}, false, fmt.Errorf("poll %s: %w", s.path, err)
	}
	buf, index, err := s.cam.GetFrame()
	if errors.Is(err, unix.EAGAIN) {
		return media.RawFrame{}, false, nil
	}
	if err != nil {
		return media.RawFrame{}, false, fmt.Errorf("dequeue %s: %w", s.path, err)
	}
	frame, ok = s.frameFrom(buf, index)
	if err := s.cam.ReleaseFrame(index); err != nil {
		return media.RawFrame{}, false, fmt.Errorf("requeue %s: %w", s.path, err)
	}
	return frame, ok, nil
}

// frameFrom copies a dequeued buffer into a frame. It must run before the
// buffer is queued again: after that the driver may overwrite both the
// data and what QUERYBUF reports.
func (s *v4l2Source) frameFrom(buf []byte, index uint32) (media.RawFrame, bool) {
	wallNow := time.Now()
	monoNow, _ := monotonicNow()
	info, haveInfo := s.bufferInfo(index)
	if (haveInfo && info.flags&bufFlagError != 0) || len(buf) < s.minFrameSize() {
		s.damaged++
		if s.damaged%100 == 1 {
			// Every frame damaged looks like a stall upstream; say why.
			s.log.Warn("dropping damaged frame", "bytes", len(buf), "want", s.minFrameSize(),
				"flags", info.flags, "damaged_total", s.damaged)
		}
		return media.RawFrame{}, false
	}
	data := s.buffers.get(len(buf))
	copy(data, buf)
	f := media.RawFrame{
		Format: s.format.Pixel, Width: s.format.Width, Height: s.format.Height, Stride: s.stride,
		Data:      data,
		Seq:       s.nextSeq(info.sequence, haveInfo),
		Timestamp: monoNow,
		Captured:  wallNow,
	}
	if age := monoNow - info.timestamp; haveInfo && info.monotonic && age >= 0 && age < maxFrameAge {
		f.Timestamp = info.timestamp
		f.Captured = wallNow.Add(-age)
	}
	return f, true
}

// queriedBuffer is bufferInfo plus the flags, for damage checks.
type queriedBuffer struct {
	sequence  uint32
	timestamp time.Duration
	monotonic bool
	flags     uint32
}

// bufferInfo asks the driver for the dequeued buffer's metadata. After the
// first failure it stops asking and frames carry read times.
func (s *v4l2Source) bufferInfo(index uint32) (queriedBuffer, bool) {
	if s.queryBufErr != nil {
		return queriedBuffer{}, false
	}
	b, err := queryBufferRaw(s.ctlFD, index)
	if err != nil {
		s.queryBufErr = err
		s.log.Info("driver timestamps unavailable, using read time", "err", err)
		return queriedBuffer{}, false
	}
	return queriedBuffer{
		sequence:  b.Sequence,
		timestamp: time.Duration(b.Timestamp.Nano()),
		monotonic: b.Flags&bufFlagTimestampMask == bufFlagTimestampMonotonic,
		flags:     b.Flags,
	}, true
}

// nextSeq numbers frames from 0, following the driver's sequence numbers
// (so that drops show as gaps) when it provides them. Drivers that leave
// the sequence at 0 are counted locally.
func (s *v4l2Source) nextSeq(drv uint32, haveDrv bool) uint64 {
	switch {
	case !s.started:
		s.started = true
	case haveDrv && drv != s.lastDrvSeq:
		gap := uint64(drv - s.lastDrvSeq) // wraps correctly at 2^32
		if gap > 1 {
			s.log.Debug("frames dropped", "count", gap-1)
		}
		s.seq += gap
	default:
		s.seq++
	}
	s.lastDrvSeq = drv
	return s.seq
}

// minFrameSize is the smallest plausible payload: the full picture for
// raw formats, anything non-empty for compressed ones.
func (s *v4l2Source) minFrameSize() int {
	stride := max(s.stride, s.format.Width)
	switch s.format.Pixel {
	case media.PixYUYV:
		return max(s.stride, 2*s.format.Width) * s.format.Height
	case media.PixNV12, media.PixI420:
		return stride * s.format.Height * 3 / 2
	default:
		return 1
	}
}

// Close stops streaming and releases the device. It waits for a Read in
// progress to finish its poll (at most waitSeconds).
func (s *v4l2Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.release()
}

// release closes everything opened so far.
func (s *v4l2Source) release() error {
	err := s.cam.Close()
	if s.ownFD >= 0 {
		unix.Close(s.ownFD)
		s.ownFD = -1
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

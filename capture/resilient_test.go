package capture

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"os"
	"syscall"

	"github.com/camagent/camagent/internal/base/media"
)

// fakeSource returns queued results and otherwise blocks until its
// context ends or it is closed.
type fakeSource struct {
	name    string
	results chan fakeResult
	closed  chan struct{}
	once    sync.Once
}

type fakeResult struct {
	frame media.RawFrame
	err   error
}

func newFakeSource(name string, results ...fakeResult) *fakeSource {
	s := &fakeSource{name: name, results: make(chan fakeResult, len(results)+10), closed: make(chan struct{})}
	for _, r := range results {
		s.results <- r
	}
	return s
}

func frameSeq(seq uint64) fakeResult {
	return fakeResult{frame: media.RawFrame{Seq: seq, Data: []byte{byte(seq)}}}
}

func (s *fakeSource) Format() Format {
	return Format{Pixel: media.PixYUYV, Width: 640, Height: 480, FPS: 30}
}

func (s *fakeSource) Read(ctx context.Context) (media.RawFrame, error) {
	select {
	case r := <-s.results:
		return r.frame, r.err
	case <-ctx.Done():
		return media.RawFrame{}, ctx.Err()
	case <-s.closed:
		return media.RawFrame{}, ErrClosed
	}
}

func (s *fakeSource) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *fakeSource) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// opener is a factory handing out queued sources or errors.
type opener struct {
	mu    sync.Mutex
	queue []fakeOpen
	calls int
}

type fakeOpen struct {
	src *fakeSource
	err error
}

func (o *opener) open(context.Context) (Source, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	if len(o.queue) == 0 {
		return nil, errors.New("opener: nothing queued")
	}
	next := o.queue[0]
	o.queue = o.queue[1:]
	if next.err != nil {
		return nil, next.err
	}
	return next.src, nil
}

func (o *opener) callCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls
}

const testStall = 2 * time.Second

func newTestResilient(first Source, o *opener, clock *fakeClock) *Resilient {
	return NewResilient(o.open, ResilientOptions{
		First:        first,
		StallTimeout: testStall,
		Clock:        clock,
		Jitter:       func() float64 { return 0.5 }, // no spread: exact waits
	})
}

type readResult struct {
	frame media.RawFrame
	err   error
}

// readAsync starts a Read and returns where its result will appear.
func readAsync(ctx context.Context, r Source) <-chan readResult {
	out := make(chan readResult, 1)
	go func() {
		f, err := r.Read(ctx)
		out <- readResult{f, err}
	}()
	return out
}

func await(t *testing.T, ch <-chan readResult) readResult {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return")
		return readResult{}
	}
}

// readNow reads a frame that is already queued.
func readNow(t *testing.T, r *Resilient, clock *fakeClock) media.RawFrame {
	t.Helper()
	res := readAsync(context.Background(), r)
	clock.expectArmed(t, testStall)
	got := await(t, res)
	if got.err != nil {
		t.Fatalf("Read: %v", got.err)
	}
	return got.frame
}

func TestResilientStallReopens(t *testing.T) {
	clock := newFakeClock(false)
	first := newFakeSource("first", frameSeq(0), frameSeq(1))
	second := newFakeSource("second", frameSeq(0))
	o := &opener{queue: []fakeOpen{{src: second}}}
	r := newTestResilient(first, o, clock)
	defer r.Close()

	for want := uint64(0); want < 2; want++ {
		if f := readNow(t, r, clock); f.Seq != want {
			t.Fatalf("Seq = %d, want %d", f.Seq, want)
		}
	}
	res := readAsync(context.Background(), r)
	clock.expectArmed(t, testStall)
	clock.Advance(testStall) // first delivers nothing: a stall
	clock.expectArmed(t, DefaultMinBackoff)
	if !first.isClosed() {
		t.Error("stalled source not closed")
	}
	clock.Advance(DefaultMinBackoff)
	clock.expectArmed(t, testStall) // reading from second
	got := await(t, res)
	if got.err != nil || got.frame.Seq != 2 {
		t.Fatalf("after reopen: Seq %d, err %v; want Seq 2 (numbering continues)", got.frame.Seq, got.err)
	}
	want := ResilientStats{Frames: 3, Stalls: 1, Reopens: 1}
	if s := r.Stats(); s != want {
		t.Errorf("Stats = %v, want %v", s, want)
	}
}

func TestResilientErrorReopensWithBackoff(t *testing.T) {
	for _, readErr := range []error{
		fmt.Errorf("dequeue /dev/video0: %w", syscall.ENODEV), // unplugged
		fmt.Errorf("poll /dev/video0: %w", syscall.EIO),
	} {
		t.Run(readErr.Error(), func(t *testing.T) {
			clock := newFakeClock(false)
			first := newFakeSource("first", fakeResult{err: readErr})
			second := newFakeSource("second", frameSeq(7))
			gone := &os.PathError{Op: "open", Path: "/dev/video0", Err: syscall.ENOENT}
			o := &opener{queue: []fakeOpen{{err: gone}, {err: gone}, {src: second}}}
			r := newTestResilient(first, o, clock)
			defer r.Close()

			res := readAsync(context.Background(), r)
			clock.expectArmed(t, testStall)
			// Each failed attempt doubles the wait.
			for i, wait := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second} {
				clock.expectArmed(t, wait)
				if n := o.callCount(); n != i {
					t.Fatalf("opened %d times before waiting %v, want %d", n, wait, i)
				}
				clock.Advance(wait)
			}
			clock.expectArmed(t, testStall)
			got := await(t, res)
			if got.err != nil || got.frame.Seq != 0 {
				t.Fatalf("got Seq %d, err %v; want the first frame numbered 0", got.frame.Seq, got.err)
			}
			want := ResilientStats{Frames: 1, Errors: 1, Reopens: 1, ReopenFailures: 2}
			if s := r.Stats(); s != want {
				t.Errorf("Stats = %v, want %v", s, want)
			}
		})
	}
}

func TestResilientCancel(t *testing.T) {
	tests := []struct {
		name string
		// first is what the initial source does; afterRead are the
		// timers armed before the cancel.
		first     *fakeSource
		armed     []time.Duration
		wantStats ResilientStats
	}{
		{"while reading", newFakeSource("blocked"), []time.Duration{testStall}, ResilientStats{}},
		{"while backing off", newFakeSource("failing", fakeResult{err: syscall.ENODEV}),
			[]time.Duration{testStall, DefaultMinBackoff}, ResilientStats{Errors: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock(false)
			o := &opener{}
			r := newTestResilient(tt.first, o, clock)
			defer r.Close()
			ctx, cancel := context.WithCancel(context.Background())
			res := readAsync(ctx, r)
			for _, d := range tt.armed {
				clock.expectArmed(t, d)
			}
			cancel()
			if got := await(t, res); !errors.Is(got.err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", got.err)
			}
			if s := r.Stats(); s != tt.wantStats {
				t.Errorf("Stats = %v, want %v", s, tt.wantStats)
			}
			if o.callCount() != 0 {
				t.Errorf("reopened %d times after cancel", o.callCount())
			}
		})
	}
}

func TestResilientCancelKeepsSource(t *testing.T) {
	clock := newFakeClock(false)
	src := newFakeSource("src")
	r := newTestResilient(src, &opener{}, clock)
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	res := readAsync(ctx, r)
	clock.expectArmed(t, testStall)
	cancel()
	await(t, res)
	if src.isClosed() {
		t.Fatal("a cancelled read closed a healthy source")
	}
	src.results <- frameSeq(0)
	if f := readNow(t, r, clock); f.Seq != 0 {
		t.Errorf("Seq = %d, want 0", f.Seq)
	}
}

func TestResilientCloseUnblocksRead(t *testing.T) {
	clock := newFakeClock(false)
	src := newFakeSource("src")
	r := newTestResilient(src, &opener{}, clock)
	res := readAsync(context.Background(), r)
	clock.expectArmed(t, testStall)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := await(t, res); !errors.Is(got.err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", got.err)
	}
	if !src.isClosed() {
		t.Error("inner source not closed")
	}
	if _, err := r.Read(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestResilientCountsDropsAndContinuesSeq(t *testing.T) {
	clock := newFakeClock(false)
	first := newFakeSource("first", frameSeq(10), frameSeq(11), frameSeq(14))
	second := newFakeSource("second", frameSeq(0), frameSeq(1))
	r := newTestResilient(first, &opener{queue: []fakeOpen{{src: second}}}, clock)
	defer r.Close()

	var got []uint64
	for range 3 {
		got = append(got, readNow(t, r, clock).Seq)
	}
	res := readAsync(context.Background(), r)
	clock.expectArmed(t, testStall)
	clock.Advance(testStall)
	clock.expectArmed(t, DefaultMinBackoff)
	clock.Advance(DefaultMinBackoff)
	clock.expectArmed(t, testStall)
	got = append(got, await(t, res).frame.Seq)
	got = append(got, readNow(t, r, clock).Seq)

	want := []uint64{0, 1, 4, 5, 6}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Seq = %v, want %v", got, want)
	}
	if s := r.Stats(); s.Drops != 2 || s.Frames != 5 {
		t.Errorf("Stats = %v, want 2 drops in 5 frames", s)
	}
}

func TestResilientOpensLazily(t *testing.T) {
	clock := newFakeClock(false)
	src := newFakeSource("src", frameSeq(0))
	o := &opener{queue: []fakeOpen{{src: src}}}
	r := newTestResilient(nil, o, clock)
	defer r.Close()
	// No First source: the first Read opens without waiting.
	if f := readNow(t, r, clock); f.Seq != 0 {
		t.Fatalf("Seq = %d", f.Seq)
	}
	if s := r.Stats(); s.Reopens != 0 || o.callCount() != 1 {
		t.Errorf("Stats = %v after %d opens; the first open is not a reopen", s, o.callCount())
	}
	if r.Format() != src.Format() {
		t.Errorf("Format = %v, want %v", r.Format(), src.Format())
	}
}

func TestBackoff(t *testing.T) {
	const lo, hi = 250 * time.Millisecond, 10 * time.Second
	tests := []struct {
		attempt int
		jitter  float64
		want    time.Duration
	}{
		{0, 0.5, 250 * time.Millisecond},
		{1, 0.5, 500 * time.Millisecond},
		{2, 0.5, time.Second},
		{5, 0.5, 8 * time.Second},
		{6, 0.5, hi},
		{1000, 0.5, hi}, // no overflow
		{0, 0, lo},      // never below the minimum
		{1, 0, 375 * time.Millisecond},
		{1, 0.999999, 624999750 * time.Nanosecond},
		{6, 0, 7500 * time.Millisecond}, // jitter still spreads at the cap
		{6, 0.999999, hi},
	}
	for _, tt := range tests {
		if got := backoff(tt.attempt, lo, hi, tt.jitter); got != tt.want {
			t.Errorf("backoff(%d, jitter %v) = %v, want %v", tt.attempt, tt.jitter, got, tt.want)
		}
	}
}

package dialrace

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock hands out head-start channels that the test fires by hand, so
// no test depends on how fast the machine is.
type fakeClock struct {
	mu      sync.Mutex
	pending []chan time.Time
	asked   chan struct{}
}

func newFakeClock() *fakeClock { return &fakeClock{asked: make(chan struct{}, 16)} }

func (c *fakeClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.pending = append(c.pending, ch)
	c.mu.Unlock()
	c.asked <- struct{}{}
	return ch
}

// fire lets the latest head start elapse.
func (c *fakeClock) fire(t *testing.T) {
	t.Helper()
	select {
	case <-c.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("no head start was asked for")
	}
	c.mu.Lock()
	ch := c.pending[len(c.pending)-1]
	c.mu.Unlock()
	ch <- time.Time{}
}

// hang never connects; it ends only when cancelled.
func hang(ctx context.Context) (string, error) {
	<-ctx.Done()
	return "", ctx.Err()
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) trace(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func TestSecondWinsAfterHeadStartAndFirstIsCancelled(t *testing.T) {
	clock := newFakeClock()
	var rec recorder
	relayStarted := make(chan struct{})
	attempts := []Attempt[string]{
		{Name: "direct", Dial: hang},
		{Name: "relay", Dial: func(ctx context.Context) (string, error) {
			close(relayStarted)
			return "relayed", nil
		}},
	}
	done := make(chan struct{})
	var got string
	var idx int
	var err error
	go func() {
		defer close(done)
		got, idx, err = First(context.Background(), Config[string]{After: clock.After, Trace: rec.trace}, attempts)
	}()
	select {
	case <-relayStarted:
		t.Fatal("relay started before the direct attempt's head start elapsed")
	case <-time.After(50 * time.Millisecond):
	}
	clock.fire(t)
	<-done
	if err != nil || got != "relayed" || idx != 1 {
		t.Fatalf("First = %q, %d, %v", got, idx, err)
	}
	want := []Event{
		{Attempt: 0, Name: "direct", Started: true},
		{Attempt: 1, Name: "relay", Started: true},
		{Attempt: 1, Name: "relay"},
		{Attempt: 0, Name: "direct", Err: context.Canceled},
	}
	if !slices.Equal(rec.events, want) {
		t.Fatalf("events %+v, want %+v", rec.events, want)
	}
}

func TestFailureHandsOverWithoutWaiting(t *testing.T) {
	clock := newFakeClock()
	attempts := []Attempt[string]{
		{Name: "a", Dial: func(context.Context) (string, error) { return "", errors.New("refused") }},
		{Name: "b", Dial: func(context.Context) (string, error) { return "b", nil }},
	}
	// The clock is never fired: only a's failure can start b.
	got, idx, err := First(context.Background(), Config[string]{After: clock.After}, attempts)
	if err != nil || got != "b" || idx != 1 {
		t.Fatalf("First = %q, %d, %v", got, idx, err)
	}
}

func TestFirstWinsAloneAndLateWinnerIsDiscarded(t *testing.T) {
	// a succeeds before its head start: b never starts.
	clock := newFakeClock()
	started := 0
	attempts := []Attempt[string]{
		{Name: "a", Dial: func(context.Context) (string, error) { return "a", nil }},
		{Name: "b", Dial: func(context.Context) (string, error) { started++; return "b", nil }},
	}
	got, _, err := First(context.Background(), Config[string]{After: clock.After}, attempts)
	if err != nil || got != "a" || started != 0 {
		t.Fatalf("First = %q, %v; b started %d times", got, err, started)
	}

	// Both connect; the one that finished second is discarded.
	release := make(chan struct{})
	var discarded []string
	attempts = []Attempt[string]{
		{Name: "slow", Dial: func(context.Context) (string, error) { <-release; return "slow", nil }},
		{Name: "fast", Dial: func(context.Context) (string, error) { return "fast", nil }},
	}
	trace := func(e Event) {
		if e.Name == "fast" && !e.Started {
			close(release)
		}
	}
	got, _, err = First(context.Background(), Config[string]{Trace: trace, Discard: func(s string) { discarded = append(discarded, s) }}, attempts)
	if err != nil || got != "fast" || !slices.Equal(discarded, []string{"slow"}) {
		t.Fatalf("First = %q, %v; discarded %v", got, err, discarded)
	}
}

func TestAllFail(t *testing.T) {
	attempts := []Attempt[int]{
		{Name: "a", Dial: func(context.Context) (int, error) { return 0, errors.New("one") }},
		{Name: "b", Dial: func(context.Context) (int, error) { return 0, errors.New("two") }},
	}
	_, idx, err := First(context.Background(), Config[int]{HeadStart: time.Hour}, attempts)
	if idx != -1 || err == nil || err.Error() != "a: one\nb: two" {
		t.Fatalf("First = %d, %v", idx, err)
	}
	if _, _, err := First[int](context.Background(), Config[int]{}, nil); err == nil {
		t.Fatal("no attempts: no error")
	}
}

func TestParentCancelEndsRace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	attempts := []Attempt[string]{{Name: "a", Dial: hang}, {Name: "b", Dial: hang}}
	go cancel()
	if _, _, err := First(ctx, Config[string]{}, attempts); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

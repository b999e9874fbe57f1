package capture

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that only moves when told to. Every AfterFunc is
// reported on armed so that a test can wait for the code under test to
// reach a timer before advancing past it. In auto mode timers fire at
// once, moving the clock to their deadline: a reader paced by the clock
// then runs without waiting.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	auto   bool
	timers []*fakeTimer
	sleeps []time.Duration // every AfterFunc duration, in order
	armed  chan time.Duration
}

type fakeTimer struct {
	clock *fakeClock
	when  time.Time
	f     func()
	done  bool // fired or stopped
}

func newFakeClock(auto bool) *fakeClock {
	return &fakeClock{
		now:   time.Date(2026, 11, 3, 14, 15, 16, 0, time.UTC),
		auto:  auto,
		armed: make(chan time.Duration, 1000),
	}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	t := &fakeTimer{clock: c, when: c.now.Add(d), f: f}
	if c.auto {
		c.now = t.when
		t.done = true
		c.mu.Unlock()
		f()
		return t
	}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.armed <- d
	return t
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Advance moves the clock and runs the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.done && !t.when.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// expectArmed waits for the next AfterFunc and checks its duration. The
// real-time limit only turns a hang into a failure.
func (c *fakeClock) expectArmed(t *testing.T, want time.Duration) {
	t.Helper()
	select {
	case got := <-c.armed:
		if got != want {
			t.Fatalf("timer armed for %v, want %v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no timer armed, want one for %v", want)
	}
}

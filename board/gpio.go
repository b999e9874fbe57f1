package board

import (
	"fmt"
	"sync"
	"time"
)

// OutputLine is a requested GPIO output; *gpiocdev.Line satisfies it, and
// tests use a fake.
type OutputLine interface {
	SetValue(value int) error
	Close() error
}

// Motion follows a PIR sensor's output (an HC-SR501 holds its output high
// while it sees motion). It counts motion events (rising edges) and stays
// active for Hold after the output falls, so that a person pausing in the
// frame does not end the event. Edges come from the GPIO line's event
// handler, with the kernel's debounce already applied.
type Motion struct {
	hold time.Duration
	now  func() time.Time

	mu       sync.Mutex
	high     bool
	lastFall time.Time
	events   uint64
	onStart  func()
}

// NewMotion returns a detector. now is the clock (time.Now on a board);
// onStart, if set, is called (without locks held) when a new motion event
// begins: the hook for recording or notifying.
func NewMotion(hold time.Duration, now func() time.Time, onStart func()) *Motion {
	if now == nil {
		now = time.Now
	}
	return &Motion{hold: hold, now: now, onStart: onStart}
}

// Edge records a level change of the PIR output.
func (m *Motion) Edge(rising bool) {
	m.mu.Lock()
	started := false
	switch {
	case rising && !m.high:
		// A rise within the hold of the last fall continues that event.
		started = m.lastFall.IsZero() || m.now().Sub(m.lastFall) >= m.hold
		if started {
			m.events++
		}
		m.high = true
	case !rising && m.high:
		m.high = false
		m.lastFall = m.now()
	}
	m.mu.Unlock()
	if started && m.onStart != nil {
		m.onStart()
	}
}

// Active reports whether motion is seen now or was within Hold.
func (m *Motion) Active() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.high || (!m.lastFall.IsZero() && m.now().Sub(m.lastFall) < m.hold)
}

// Events is the number of motion events since start.
func (m *Motion) Events() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events
}

// IRCut drives an IR-cut filter: in by day (true colours), out at night so
// that the IR illuminator lights the scene. ActiveLow inverts the line for
// boards whose driver pulls the filter in on a low level.
type IRCut struct {
	line      OutputLine
	activeLow bool

	mu    sync.Mutex
	night bool
	set   bool
}

// NewIRCut takes over line and puts the filter in (day).
func NewIRCut(line OutputLine, activeLow bool) (*IRCut, error) {
	c := &IRCut{line: line, activeLow: activeLow}
	if err := c.SetNight(false); err != nil {
		return nil, err
	}
	return c, nil
}

// SetNight moves the filter out (night) or in (day). The line is written
// only on a change: some IR-cut solenoids draw current while switching.
func (c *IRCut) SetNight(night bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set && c.night == night {
		return nil
	}
	// Filter in (day) is the line's active level.
	level := 1
	if night {
		level = 0
	}
	if c.activeLow {
		level = 1 - level
	}
	if err := c.line.SetValue(level); err != nil {
		return fmt.Errorf("ir-cut: %w", err)
	}
	c.night, c.set = night, true
	return nil
}

// Night reports whether the filter is out.
func (c *IRCut) Night() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.night
}

// Close releases the line.
func (c *IRCut) Close() error { return c.line.Close() }

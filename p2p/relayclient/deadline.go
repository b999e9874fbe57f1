package relayclient

import (
	"os"
	"sync"
	"time"
)

var errTimeout = os.ErrDeadlineExceeded

// deadline implements net.PacketConn read deadlines for readers that block
// on a channel or a context: changed() is closed whenever the deadline is
// reset, so a blocked reader re-evaluates.
type deadline struct {
	mu  *sync.Mutex
	t   *time.Time
	chg *chan struct{}
}

func newDeadline() deadline {
	ch := make(chan struct{})
	return deadline{mu: new(sync.Mutex), t: new(time.Time), chg: &ch}
}

func (d deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	*d.t = t
	close(*d.chg)
	*d.chg = make(chan struct{})
}

// get returns the deadline and a channel closed when it changes.
func (d deadline) get() (time.Time, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return *d.t, *d.chg
}

func (d deadline) expired() bool {
	t, _ := d.get()
	return !t.IsZero() && !time.Now().Before(t)
}

package traversal

import "time"

// engine feeds a clientCore: an event in, the actions it returns
// performed in order, the events that performing answers with handled
// next (before any other event, as if the core had waited for them), and
// one timer armed at the last armTimer. The Client runs one with quic-go
// paths; the timer tests run one with fake I/O inside a synctest bubble.
type engine struct {
	core    *clientCore
	now     func() time.Time
	sense   func() senses
	perform func(action) event // an answer to the action, or nil
	timer   *time.Timer
}

func newEngine(core *clientCore, now func() time.Time, sense func() senses, perform func(action) event) *engine {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &engine{core: core, now: now, sense: sense, perform: perform, timer: t}
}

// dispatch handles ev and the answers of what it caused.
func (e *engine) dispatch(ev event) {
	var wake time.Time
	for queue := []event{ev}; len(queue) > 0; queue = queue[1:] {
		for _, a := range e.core.handle(queue[0], e.now(), e.sense()) {
			if t, ok := a.(armTimer); ok {
				wake = t.at
				continue
			}
			if answer := e.perform(a); answer != nil {
				queue = append(queue, answer)
			}
		}
	}
	e.arm(wake)
}

// arm sets the timer to fire at t (Go 1.23 timers: Reset and Stop leave
// no stale tick in the channel).
func (e *engine) arm(t time.Time) {
	if t.IsZero() {
		e.timer.Stop()
		return
	}
	e.timer.Reset(max(t.Sub(e.now()), 0))
}

func (e *engine) stop() { e.timer.Stop() }

// Package dialrace races connection attempts happy-eyeballs style (RFC
// 8305 §5): attempts start in order, each one either when the one before
// it fails or when it has had its head start, whichever comes first; the
// first to succeed wins and the others are cancelled. A camera's direct
// address that silently drops packets then costs a viewer only the head
// start, not a whole handshake timeout, while a direct path that answers
// quickly still wins over the relay.
package dialrace

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Attempt is one way to connect.
type Attempt[T any] struct {
	Name string
	// Dial connects or fails; it must return soon after ctx ends.
	Dial func(ctx context.Context) (T, error)
}

// Config tunes a race. The zero value starts every attempt at once.
type Config[T any] struct {
	// HeadStart is how long an attempt runs alone before the next starts.
	HeadStart time.Duration
	// After is the clock for head starts; nil means time.After. Tests
	// pass a channel they fire themselves.
	After func(time.Duration) <-chan time.Time
	// Discard closes a connection that completed after another had won.
	Discard func(T)
	// Trace, if set, hears every attempt start and end, in order.
	Trace func(Event)
}

// Event is one step of a race, for logs and tests.
type Event struct {
	Attempt int    // index into the attempts
	Name    string // the attempt's Name
	Started bool   // true when it starts, false when it ends
	// Err is how it ended: nil for the winner, context.Canceled (maybe
	// wrapped) for an attempt cancelled because another won.
	Err error
}

// First runs the attempts and returns the first success and its index.
// It returns only after every started attempt has ended, so no dial
// outlives it; losers that connected anyway are passed to Discard. If all
// fail, the error joins theirs.
func First[T any](ctx context.Context, cfg Config[T], attempts []Attempt[T]) (T, int, error) {
	var zero T
	if len(attempts) == 0 {
		return zero, -1, errors.New("dialrace: nothing to dial")
	}
	after := cfg.After
	if after == nil {
		after = time.After
	}
	trace := func(e Event) {
		if cfg.Trace != nil {
			cfg.Trace(e)
		}
	}
	if len(attempts) == 1 {
		// Nothing to race: dial on the caller's goroutine. Besides saving
		// a goroutine this keeps the caller's OS thread, which matters to
		// callers that pinned it (a test in another network namespace
		// creates its sockets on its own locked thread).
		trace(Event{Attempt: 0, Name: attempts[0].Name, Started: true})
		v, err := attempts[0].Dial(ctx)
		trace(Event{Attempt: 0, Name: attempts[0].Name, Err: err})
		if err != nil {
			return zero, -1, errors.Join(fmt.Errorf("%s: %w", attempts[0].Name, err))
		}
		return v, 0, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type result struct {
		i   int
		v   T
		err error
	}
	results := make(chan result, len(attempts))
	next, running := 0, 0
	start := func() {
		i := next
		next++
		running++
		trace(Event{Attempt: i, Name: attempts[i].Name, Started: true})
		go func() {
			v, err := attempts[i].Dial(ctx)
			results <- result{i, v, err}
		}()
	}

	var (
		winner    = -1
		won       T
		errs      = make([]error, len(attempts))
		headStart <-chan time.Time // runs while a next attempt waits
	)
	launch := func() {
		start()
		headStart = nil
		if next < len(attempts) {
			headStart = after(cfg.HeadStart)
		}
	}
	launch()
	for running > 0 {
		select {
		case <-headStart:
			launch()
		case r := <-results:
			running--
			switch {
			case r.err == nil && winner < 0:
				winner, won = r.i, r.v
				headStart = nil
				cancel() // the others stop; wait for them below
			case r.err == nil:
				// Connected after another won: not needed.
				if cfg.Discard != nil {
					cfg.Discard(r.v)
				}
				r.err = context.Canceled
			case winner >= 0:
				// Lost the race; its error (normally the cancellation)
				// is only traced.
			default:
				errs[r.i] = fmt.Errorf("%s: %w", attempts[r.i].Name, r.err)
				if next < len(attempts) {
					launch() // a failure hands over at once
				}
			}
			trace(Event{Attempt: r.i, Name: attempts[r.i].Name, Err: r.err})
		}
	}
	if winner >= 0 {
		return won, winner, nil
	}
	return zero, -1, errors.Join(errs...)
}

package traversal

import (
	"context"
	"sync"

	"github.com/camagent/camagent/p2p/natwire"
)

// loop is the lifecycle Server and Client share: a reader copying the
// Channel's frames into frames, one run goroutine owning the state, tasks
// it spawns (probes, sprays, fan-outs), Close (stop) and Done/Err.
type loop struct {
	frames chan natwire.Frame
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	tasks  sync.WaitGroup
}

// start runs the reader and run until ctx (which the loop cancels when
// run returns) ends; cleanup runs after run and the tasks it spawned,
// before Done is closed. The reader is not waited for: a Channel over a
// stream without read deadlines returns from Receive only when the
// stream ends (natwire.StreamChannel).
func (l *loop) start(ch natwire.Channel, run func(ctx context.Context, readErr <-chan error) error, cleanup func()) {
	ctx, cancel := context.WithCancel(context.Background())
	l.frames, l.cancel, l.done = make(chan natwire.Frame, 16), cancel, make(chan struct{})
	readErr := make(chan error, 1)
	go func() { readErr <- l.read(ctx, ch) }()
	go func() {
		l.err = run(ctx, readErr)
		cancel()
		l.tasks.Wait()
		if cleanup != nil {
			cleanup()
		}
		close(l.done)
	}()
}

func (l *loop) read(ctx context.Context, ch natwire.Channel) error {
	for {
		f, err := ch.Receive(ctx)
		if err != nil {
			return err
		}
		select {
		case l.frames <- f:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// spawn runs task on its own goroutine; the loop waits for it before
// Done is closed. task must return once the loop's context ends.
func (l *loop) spawn(task func()) {
	l.tasks.Add(1)
	go func() {
		defer l.tasks.Done()
		task()
	}()
}

// Done is closed when the loop has stopped.
func (l *loop) Done() <-chan struct{} { return l.done }

// Err is why the loop stopped (nil after Close), once Done is closed.
func (l *loop) Err() error {
	<-l.done
	return l.err
}

// stop ends the loop and waits for it.
func (l *loop) stop() {
	l.cancel()
	<-l.done
}

// counters is a stats struct behind a mutex, updated from any goroutine.
type counters[T any] struct {
	mu sync.Mutex
	v  T
}

func (c *counters[T]) add(f func(*T)) {
	c.mu.Lock()
	f(&c.v)
	c.mu.Unlock()
}

func (c *counters[T]) get() T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.v
}

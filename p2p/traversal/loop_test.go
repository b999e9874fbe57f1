package traversal

import (
	"context"
	"errors"
	"testing"

	"github.com/camagent/camagent/p2p/natwire"
)

// The loop waits for the tasks its run spawned (probes, sprays, fan-outs)
// before Done is closed, and Err reports why run returned.
func TestLoopLifecycle(t *testing.T) {
	failed := errors.New("run failed")
	for _, tt := range []struct {
		name string
		fail bool
		want error
	}{{"Close", false, nil}, {"run fails", true, failed}} {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := natwire.NewPipe()
			var l loop
			taskEnded := make(chan struct{})
			spawned := make(chan struct{})
			fail := make(chan struct{})
			l.start(a, func(ctx context.Context, _ <-chan error) error {
				l.spawn(func() {
					<-ctx.Done()
					close(taskEnded)
				})
				close(spawned)
				select {
				case <-ctx.Done():
					return nil
				case <-fail:
					return failed
				}
			}, func() {
				select {
				case <-taskEnded:
				default:
					t.Error("cleanup ran before the task ended")
				}
			})
			<-spawned
			if tt.fail {
				close(fail)
				<-l.Done()
			} else {
				l.stop()
			}
			<-l.Done()
			select {
			case <-taskEnded:
			default:
				t.Fatal("Done closed before the task ended")
			}
			if err := l.Err(); !errors.Is(err, tt.want) {
				t.Fatalf("Err = %v, want %v", err, tt.want)
			}
			l.stop() // a second stop (Close) is harmless
		})
	}
}

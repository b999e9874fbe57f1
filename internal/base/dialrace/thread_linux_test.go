package dialrace

import (
	"context"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSingleAttemptRunsOnCallersThread: with nothing to race, First dials
// on the caller's goroutine, so a caller that locked its OS thread (into a
// network namespace, say) creates its sockets there.
func TestSingleAttemptRunsOnCallersThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	caller := unix.Gettid()
	var events []Event
	got, i, err := First(context.Background(), Config[int]{Trace: func(e Event) { events = append(events, e) }},
		[]Attempt[int]{{Name: "only", Dial: func(context.Context) (int, error) { return unix.Gettid(), nil }}})
	if err != nil || i != 0 {
		t.Fatalf("First = %d, %v", i, err)
	}
	if got != caller {
		t.Fatalf("dialled on thread %d, caller is on %d", got, caller)
	}
	if len(events) != 2 || !events[0].Started || events[1].Started || events[1].Err != nil {
		t.Fatalf("trace %+v, want a start and a clean end", events)
	}
}

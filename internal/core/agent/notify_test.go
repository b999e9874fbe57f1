package agent

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/testtier"
)

// fakeAgent is a supervised agent whose health the test sets.
type fakeAgent struct {
	ready   chan struct{}
	healthy atomic.Bool
}

func (f *fakeAgent) Ready() <-chan struct{} { return f.ready }
func (f *fakeAgent) Healthy() bool          { return f.healthy.Load() }
func (f *fakeAgent) Status() string         { return "1 viewers, 42 frames captured" }

// TestNotifySystemd speaks sd_notify to a real datagram socket, as systemd
// does for Type=notify with WatchdogSec: READY=1 only once the agent is
// ready, then WATCHDOG=1 with each STATUS= while healthy and never while
// not, so systemd restarts a stuck agent; Close sends STOPPING=1, closes
// Done and leaves Err nil.
func TestNotifySystemd(t *testing.T) {
	testtier.Slow(t, "a second of real 100 ms watchdog ticks")
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000") // pings every 100 ms
	t.Setenv("WATCHDOG_PID", "")

	a := &fakeAgent{ready: make(chan struct{})}
	n := startNotifier(a, slog.New(slog.DiscardHandler))
	defer n.Close()

	read := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}

	// Nothing before the first frame: a datagram now would be premature.
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 64)); err == nil {
		t.Fatalf("notification before ready (%d bytes)", n)
	}
	a.healthy.Store(true)
	close(a.ready)
	if msg := read(); !strings.Contains(msg, "READY=1") || !strings.Contains(msg, "STATUS=1 viewers") {
		t.Fatalf("first notification %q, want READY=1 and STATUS=", msg)
	}
	if msg := read(); !strings.Contains(msg, "WATCHDOG=1") {
		t.Fatalf("healthy tick %q, want WATCHDOG=1", msg)
	}
	a.healthy.Store(false)
	read() // a tick may have been in flight when health changed
	for range 3 {
		if msg := read(); strings.Contains(msg, "WATCHDOG=1") || !strings.Contains(msg, "STATUS=") {
			t.Fatalf("unhealthy tick %q, want STATUS= without WATCHDOG=1", msg)
		}
	}
	a.healthy.Store(true)
	read()
	if msg := read(); !strings.Contains(msg, "WATCHDOG=1") {
		t.Fatalf("recovered tick %q, want WATCHDOG=1 again", msg)
	}

	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-n.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if err := n.Err(); err != nil {
		t.Errorf("Err: %v, want nil", err)
	}
	for {
		msg := read() // a tick may have been in flight at Close
		if strings.Contains(msg, "STOPPING=1") {
			break
		}
		if !strings.Contains(msg, "STATUS=") {
			t.Fatalf("after Close %q, want STOPPING=1", msg)
		}
	}
}

package agent

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/camagent/camagent/capture"
	"github.com/camagent/camagent/internal/base/config"
)

// newIdleAgent is an agent on loopback that has not run, with the pure Go
// encoder so that the test runs with CGO_ENABLED=0 too.
func newIdleAgent(t *testing.T) *Agent {
	t.Helper()
	cfg := config.Default()
	cfg.Name, cfg.StateDir, cfg.Listen = "life", t.TempDir(), "127.0.0.1:0"
	cfg.Capture.Device, cfg.Capture.Width, cfg.Capture.Height, cfg.Capture.FPS = "test", 160, 120, 30
	cfg.Encode.Codec = "mjpeg"
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// waitDone fails the test unless c closes within 10 s.
func waitDone(t *testing.T, what string, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Done not closed after 10 s", what)
	}
}

// TestAgentLifecycle: Close stops a running agent (Run returns nil, Done
// closes, Err is nil), Close releases an agent that never ran (its port is
// free again, Run refuses), and a capture failure is what Err reports.
func TestAgentLifecycle(t *testing.T) {
	t.Run("Close stops Run", func(t *testing.T) {
		a := newIdleAgent(t)
		runErr := make(chan error, 1)
		go func() { runErr <- a.Run(context.Background()) }()
		select {
		case <-a.Ready():
		case err := <-runErr:
			t.Fatalf("agent stopped: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("agent not streaming after 20 s")
		}
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		waitDone(t, "after Close", a.Done())
		if err := <-runErr; err != nil {
			t.Errorf("Run after Close: %v, want nil", err)
		}
		if err := a.Err(); err != nil {
			t.Errorf("Err after Close: %v, want nil", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("Close without Run", func(t *testing.T) {
		a := newIdleAgent(t)
		addr := a.Addr().String()
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		waitDone(t, "after Close", a.Done())
		if err := a.Err(); err != nil {
			t.Errorf("Err: %v, want nil", err)
		}
		// quic-go closes the socket of a listener it opened itself from its
		// read loop, just after Close returns.
		deadline := time.Now().Add(5 * time.Second)
		for {
			pc, err := net.ListenPacket("udp", addr)
			if err == nil {
				pc.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the agent's port is still taken after Close: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := a.Run(context.Background()); !errors.Is(err, errRunAgain) {
			t.Errorf("Run after Close: %v, want %v", err, errRunAgain)
		}
	})
	t.Run("failure", func(t *testing.T) {
		a := newIdleAgent(t)
		broken := errors.New("no such camera")
		a.openSource = func() (capture.Source, error) { return nil, broken }
		if err := a.Run(context.Background()); !errors.Is(err, broken) {
			t.Fatalf("Run: %v, want %v", err, broken)
		}
		waitDone(t, "after the failure", a.Done())
		if err := a.Err(); !errors.Is(err, broken) {
			t.Errorf("Err: %v, want %v", err, broken)
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close after the failure: %v", err)
		}
		if err := a.Err(); !errors.Is(err, broken) {
			t.Errorf("Err after Close: %v, want the failure still", err)
		}
	})
}

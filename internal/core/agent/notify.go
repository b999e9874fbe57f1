package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/camagent/camagent/internal/base/logging"
)

// supervised is what the notifier needs of the agent (*Agent).
type supervised interface {
	Ready() <-chan struct{}
	Healthy() bool
	Status() string
}

// notifier tells systemd when the camera is really streaming
// (Type=notify), keeps STATUS= current, and pings the watchdog only while
// the capture loop is healthy, so a stuck loop gets the service restarted.
// The stream side is covered too: the capture loop stamps a frame only
// after hub.Publish returns, so a stuck hub makes Healthy false, and
// Status reads the hub's stats under its lock, so a deadlocked hub blocks
// this loop and the pings stop. Outside systemd (no NOTIFY_SOCKET) it
// sends nothing.
type notifier struct {
	a      supervised
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// startNotifier starts notifying systemd about a, until Close.
func startNotifier(a supervised, log *slog.Logger) *notifier {
	ctx, cancel := context.WithCancel(context.Background())
	n := &notifier{a: a, log: logging.Discard(log), cancel: cancel, done: make(chan struct{})}
	go func() {
		n.run(ctx)
		daemon.SdNotify(false, daemon.SdNotifyStopping)
		close(n.done)
	}()
	return n
}

// Close stops the notifications and tells systemd the service is stopping
// (STOPPING=1). It is safe to call more than once.
func (n *notifier) Close() error {
	n.cancel()
	<-n.done
	return nil
}

// Done is closed once the notifier has stopped and sent STOPPING=1.
func (n *notifier) Done() <-chan struct{} { return n.done }

// Err is nil once Done is closed: the notifier stops only by Close, and a
// failed sd_notify is logged, never fatal.
func (n *notifier) Err() error {
	<-n.done
	return nil
}

func (n *notifier) run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-n.a.Ready():
	}
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+n.a.Status()); err != nil {
		n.log.Warn("sd_notify failed", "err", err)
	} else if ok {
		n.log.Debug("told systemd we are ready")
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		interval = 0
	}
	tick := 5 * time.Second
	if interval > 0 && interval/2 < tick {
		tick = interval / 2
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		msg := "STATUS=" + n.a.Status()
		if interval > 0 {
			if n.a.Healthy() {
				msg += "\n" + daemon.SdNotifyWatchdog
			} else {
				n.log.Warn("capture loop unhealthy: withholding watchdog ping")
			}
		}
		daemon.SdNotify(false, msg)
	}
}

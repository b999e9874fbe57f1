package agent

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/camagent/camagent/board"
	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/feature/status"
)

const (
	// pirHold keeps a motion event open across short pauses.
	pirHold = 30 * time.Second
	// pirDebounce filters contact bounce and PIR glitches in the kernel.
	pirDebounce = 50 * time.Millisecond
	// boardTick is how often the LED follows the agent's state and the
	// hardware watchdog is fed (watchdogs time out after 10-60 s).
	boardTick = time.Second
)

// firmware is the board-facing side of the agent: status LED, PIR sensor,
// IR-cut filter, hardware watchdog and the local status endpoint. Every
// piece is optional: missing hardware is logged, never fatal, because the
// camera must still stream.
type firmware struct {
	a      *Agent
	root   string
	log    *slog.Logger
	model  string
	led    *board.LED
	wd     *board.Watchdog
	motion *board.Motion
	pir    io.Closer
	ircut  *board.IRCut
	status *status.Server

	cancel context.CancelFunc
	done   chan struct{}
	// ledFailed and wdFailed: the last LED update or watchdog kick
	// failed. A failure is logged when it starts and when it ends, not
	// on every tick.
	ledFailed, wdFailed bool
}

// startFirmware opens the board's pieces that cfg names and starts
// following a: the LED shows its state and the hardware watchdog is fed
// while it is healthy, until Close.
func startFirmware(cfg config.Config, a *Agent, log *slog.Logger) *firmware {
	bc := cfg.Board
	log = logging.Discard(log)
	f := &firmware{a: a, root: bc.Root, log: log.With("component", "board"), done: make(chan struct{})}
	if m, err := board.Model(bc.Root); err == nil {
		f.model = m
		f.log.Info("board", "model", m)
	}
	var err error
	if bc.LED != "" {
		if f.led, err = board.OpenLED(bc.Root, bc.LED); err != nil {
			f.log.Warn("status LED unavailable", "err", err)
		} else {
			f.setLED(board.PatternStarting)
		}
	}
	if bc.PIRLine >= 0 {
		f.motion = board.NewMotion(pirHold, nil, func() { f.log.Info("motion") })
		if f.pir, err = board.RequestInput(bc.PIRChip, bc.PIRLine, pirDebounce, f.motion.Edge); err != nil {
			f.log.Warn("PIR sensor unavailable", "err", err)
			f.motion = nil
		}
	}
	if bc.IRCutLine >= 0 {
		if line, err := board.RequestOutput(bc.IRCutChip, bc.IRCutLine, 0); err != nil {
			f.log.Warn("IR-cut filter unavailable", "err", err)
		} else if f.ircut, err = board.NewIRCut(line, bc.IRCutActiveLow); err != nil {
			line.Close()
			f.log.Warn("IR-cut filter unavailable", "err", err)
		}
	}
	if bc.Watchdog != "" {
		if f.wd, err = board.OpenWatchdog(bc.Watchdog); err != nil {
			f.log.Warn("hardware watchdog unavailable", "err", err)
		}
	}
	if cfg.Status.Listen != "" {
		if f.status, err = status.Listen(cfg.Status.Listen, f.snapshot, log.With("component", "status")); err != nil {
			f.log.Warn("status endpoint unavailable", "err", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		f.run(ctx)
		f.release()
		close(f.done)
	}()
	return f
}

// Close stops following the agent and releases the hardware. It is safe to
// call more than once.
func (f *firmware) Close() error {
	f.cancel()
	<-f.done
	return nil
}

// Done is closed once the firmware has stopped and released the hardware.
func (f *firmware) Done() <-chan struct{} { return f.done }

// Err is nil once Done is closed: the firmware stops only by Close, and
// missing or failing hardware is logged, never fatal.
func (f *firmware) Err() error {
	<-f.done
	return nil
}

// run keeps the LED in step with the agent and feeds the hardware watchdog
// while the agent is healthy, until ctx ends.
func (f *firmware) run(ctx context.Context) {
	t := time.NewTicker(boardTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		healthy := f.a.Healthy()
		f.setLED(f.pattern(healthy))
		if f.wd != nil && healthy {
			f.wdFailed = logFailure(f.log, "hardware watchdog", f.wd.Kick(), f.wdFailed)
		}
	}
}

func (f *firmware) pattern(healthy bool) board.Pattern {
	select {
	case <-f.a.Ready():
	default:
		return board.PatternStarting
	}
	switch {
	case !healthy:
		return board.PatternError
	case f.a.Hub().Stats().Viewers > 0:
		return board.PatternStreaming
	default:
		return board.PatternRegistered
	}
}

func (f *firmware) setLED(p board.Pattern) {
	if f.led == nil {
		return
	}
	f.ledFailed = logFailure(f.log, "status LED", f.led.Set(p), f.ledFailed)
}

// logFailure logs a piece of hardware that starts failing (err != nil
// after a success) or works again, and returns whether it is failing now.
// A failure that lasts is logged once, not every tick.
func logFailure(log *slog.Logger, what string, err error, failing bool) bool {
	switch {
	case err != nil && !failing:
		log.Warn(what+" failed (logged again only once it works)", "err", err)
	case err == nil && failing:
		log.Info(what + " works again")
	}
	return err != nil
}

func (f *firmware) snapshot() status.Snapshot {
	s := status.Snapshot{
		Healthy: f.a.Healthy(), Status: f.a.Status(), FramesCaptured: f.a.Frames(),
		Hub: f.a.Hub().Stats(), Model: f.model, NATMapping: f.a.NATMapping().String(),
		ViewersRelayed: f.a.ViewersRelayed(),
	}
	n := f.a.NATStats()
	s.NAT = status.NATStats{PunchRequests: n.PunchRequests, Punches: n.PunchesSent, Refused: n.Refused, Sprays: n.Sprays, Holes: n.Holes}
	s.Zones, _ = board.Temperatures(f.root)
	if t, err := board.ReadThrottled(f.root); err == nil {
		s.Throttled = &t
	}
	if f.motion != nil {
		n := f.motion.Events()
		s.MotionEvents, s.MotionActive = &n, f.motion.Active()
	}
	return s
}

// failed reports whether the agent has stopped on a failure.
func (f *firmware) failed() bool {
	select {
	case <-f.a.Done():
		return f.a.Err() != nil
	default:
		return false
	}
}

// release gives the hardware back. After the agent failed the LED keeps
// showing the error instead of going back to the board's own trigger.
func (f *firmware) release() {
	if f.status != nil {
		f.status.Close()
	}
	if f.led != nil {
		if f.failed() {
			f.setLED(board.PatternError)
		} else {
			f.led.Close()
		}
	}
	if f.pir != nil {
		f.pir.Close()
	}
	if f.ircut != nil {
		f.ircut.Close()
	}
	if f.wd != nil {
		f.wd.Close() // magic close: a clean stop does not reset the board
	}
}

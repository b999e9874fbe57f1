package board

import (
	"fmt"
	"os"
	"sync"
)

// Watchdog feeds a hardware watchdog device (/dev/watchdog; Documentation/
// watchdog/watchdog-api.rst). Opening it arms the timer; every Kick resets
// it; Close disarms it with the magic character 'V' so that a clean stop
// does not reboot the board. A process that dies or stops kicking gets the
// board reset by the hardware. Under systemd prefer RuntimeWatchdogSec=,
// which feeds the same device from PID 1: only one opener is allowed.
type Watchdog struct {
	mu sync.Mutex
	f  *os.File
}

// OpenWatchdog opens and so arms the watchdog at path.
func OpenWatchdog(path string) (*Watchdog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	return &Watchdog{f: f}, nil
}

// Kick resets the watchdog's timer.
func (w *Watchdog) Kick() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("watchdog: closed")
	}
	if _, err := w.f.Write([]byte{0}); err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	return nil
}

// Close disarms the watchdog (magic close) and releases the device.
func (w *Watchdog) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	_, err := w.f.Write([]byte("V"))
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return fmt.Errorf("watchdog: %w", err)
	}
	return nil
}

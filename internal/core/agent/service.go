package agent

import (
	"context"
	"log/slog"

	"github.com/camagent/camagent/internal/base/config"
)

// RunService is the camera process as systemd runs it (`camagent agent`):
// the Agent, the board around it (status LED, PIR, IR-cut, hardware
// watchdog, status endpoint) and systemd's notifications, until ctx ends
// or the agent fails. It returns the agent's Err.
func RunService(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	a, err := New(cfg, log)
	if err != nil {
		return err
	}
	fw := startFirmware(cfg, a, log)
	sd := startNotifier(a, log)
	err = a.Run(ctx)
	sd.Close() // STOPPING=1
	fw.Close() // after Run: the LED shows whether the agent failed
	return err
}

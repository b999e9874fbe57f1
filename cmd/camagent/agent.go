package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/camagent/camagent/internal/core/agent"
)

func newAgentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the camera: capture, encode and serve paired viewers",
		Long: `Run the camera agent (the systemd service). It captures from the configured
V4L2 device, or from the built-in test pattern when capture.device is "test" or
no camera is found, encodes H.264 and serves paired viewers over QUIC.`,
		Args: cobra.NoArgs,
	}
	flags := bindAgentFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.load()
		if err != nil {
			return err
		}
		// Only the agent registers with relays: other commands need not
		// read the token file.
		if cfg.Relay.Token, err = cfg.Relay.ResolveToken(os.Getenv); err != nil {
			return err
		}
		log, err := flags.logger(cfg)
		if err != nil {
			return err
		}
		a, err := agent.New(cfg, log)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		fw := startFirmware(cfg, a, log)
		go fw.run(ctx)
		go notifySystemd(ctx, a, log)
		err = a.Run(ctx)
		daemon.SdNotify(false, daemon.SdNotifyStopping)
		cancel()
		<-fw.done
		fw.close(err != nil)
		return err
	}
	return cmd
}

// supervised is what notifySystemd needs of the agent (*agent.Agent).
type supervised interface {
	Ready() <-chan struct{}
	Healthy() bool
	Status() string
}

// notifySystemd tells systemd when the camera is really streaming
// (Type=notify), keeps STATUS= current, and pings the watchdog only while
// the capture loop is healthy, so a stuck loop gets the service restarted.
// The stream side is covered too: the capture loop stamps a frame only
// after hub.Publish returns, so a stuck hub makes Healthy false, and
// Status reads the hub's stats under its lock, so a deadlocked hub blocks
// this loop and the pings stop.
func notifySystemd(ctx context.Context, a supervised, log *slog.Logger) {
	select {
	case <-ctx.Done():
		return
	case <-a.Ready():
	}
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS="+a.Status()); err != nil {
		log.Warn("sd_notify failed", "err", err)
	} else if ok {
		log.Debug("told systemd we are ready")
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
		msg := "STATUS=" + a.Status()
		if interval > 0 {
			if a.Healthy() {
				msg += "\n" + daemon.SdNotifyWatchdog
			} else {
				log.Warn("capture loop unhealthy: withholding watchdog ping")
			}
		}
		daemon.SdNotify(false, msg)
	}
}

package main

import (
	"os"

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
		return agent.RunService(cmd.Context(), cfg, log)
	}
	return cmd
}

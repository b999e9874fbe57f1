// Command camagent is the camera agent, its viewer and its admin tools in
// one binary: `camagent agent` runs on the camera board, `camagent view`
// watches it from anywhere.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/logging"
)

// version is set at build time by the Makefile.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		var quiet quietError
		if !errors.As(err, &quiet) {
			fmt.Fprintln(os.Stderr, "camagent:", err)
		}
		os.Exit(1)
	}
}

// quietError is an error already reported to the user.
type quietError struct{ error }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "camagent",
		Short:         "A home security camera that needs no cloud",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newAgentCommand(),
		newPairCommand(),
		newViewersCommand(),
		newDevicesCommand(),
		newJoinCommand(),
		newRefreshCommand(),
		newViewCommand(),
		newRecordingsCommand(),
		newSnapshotCommand(),
		newRelayCommand(),
	)
	return root
}

// agentFlags binds the configuration file flag and one flag per config key
// to an agent-side command (agent, pair, viewers, devices).
type agentFlags struct {
	path string
	cfg  config.Config
	cmd  *cobra.Command
}

func bindAgentFlags(cmd *cobra.Command) *agentFlags {
	f := &agentFlags{cfg: config.Default(), cmd: cmd}
	cmd.Flags().StringVarP(&f.path, "config", "c", config.DefaultPath, "YAML configuration file")
	config.BindFlags(cmd.Flags(), &f.cfg)
	return f
}

// load reads the configuration file (a missing default file is fine: the
// defaults apply), then applies the flags the user set, then validates.
func (f *agentFlags) load() (config.Config, error) {
	explicit := f.cmd.Flags().Changed("config")
	cfg, err := config.Load(f.path, !explicit)
	if err != nil {
		return cfg, err
	}
	if err := config.Apply(f.cmd.Flags(), &cfg); err != nil {
		return cfg, err
	}
	if f.cmd.Flags().Changed("relay.token") {
		fmt.Fprintf(os.Stderr, "camagent: warning: --relay.token is visible to every user (ps, /proc/PID/cmdline); "+
			"use relay.token_file or $%s\n", config.TokenEnv)
	}
	return cfg, cfg.Validate()
}

func (f *agentFlags) logger(cfg config.Config) (*slog.Logger, error) {
	return logging.New(os.Stderr, cfg.Log.Format, cfg.Log.Level)
}

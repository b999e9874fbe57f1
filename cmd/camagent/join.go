package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/internal/feature/pairing"
)

// viewerState is where a viewer keeps its own key and the cameras it has
// paired with: $XDG_CONFIG_HOME/camagent, else ~/.config/camagent.
func defaultViewerState() string {
	if dir := os.Getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "camagent")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".config", "camagent")
	}
	return ".camagent"
}

// viewerSide opens the viewer's identity and known-camera store.
func viewerSide(stateDir string) (*identity.Identity, *identity.CameraStore, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, nil, err
	}
	id, err := identity.LoadOrCreate(stateDir)
	if err != nil {
		return nil, nil, err
	}
	cams, err := identity.OpenCameraStore(identity.CamerasPath(stateDir))
	return id, cams, err
}

func newJoinCommand() *cobra.Command {
	var stateDir, as string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "join PAIRING-URI",
		Short: "Pair this viewer with a camera using the offer `camagent pair` printed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			offer, err := pairing.ParseOffer(args[0])
			if err != nil {
				return err
			}
			id, cams, err := viewerSide(stateDir)
			if err != nil {
				return err
			}
			if as == "" {
				as, _ = os.Hostname()
			}
			ctx, cancel := contextWithTimeout(cmd, timeout)
			defer cancel()
			cam, err := pairing.Join(ctx, offer, id, as, cams)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "paired with camera %q (key %s); watch it with: camagent view %s\n",
				cam.Name, identity.ShortFingerprint(cam.Fingerprint), cam.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", defaultViewerState(), "viewer's key and known cameras")
	cmd.Flags().StringVar(&as, "as", "", "name this viewer gives the camera (default: host name)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/camagent/camagent/internal/feature/pairing"
)

// newRefreshCommand fetches a paired viewer's own relay locators from the
// camera (docs/relay.md, "Finding the camera again"): for a viewer paired
// before locators were per viewer, or after the camera's relays changed.
func newRefreshCommand() *cobra.Command {
	var stateDir string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "refresh CAMERA",
		Short: "Fetch this viewer's current relay URLs (its own locators) from a paired camera",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, cams, err := viewerSide(stateDir)
			if err != nil {
				return err
			}
			cam, err := cams.Get(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := contextWithTimeout(cmd, timeout)
			defer cancel()
			cam, err = pairing.Refresh(ctx, cam, id, cams)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "camera %q: %d relay URLs saved\n", cam.Name, len(cam.Relays))
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", defaultViewerState(), "viewer's key and known cameras")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/camagent/camagent/capture"
)

func newDevicesCommand() *cobra.Command {
	var devRoot string
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List V4L2 capture devices with their formats, sizes and frame rates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			devs, err := capture.ListDevices(devRoot)
			if err != nil {
				return err
			}
			if len(devs) == 0 {
				fmt.Fprintf(os.Stderr, "no V4L2 capture devices under %s; the agent will use the test source\n", devRoot)
				return nil
			}
			return capture.WriteDevices(cmd.OutOrStdout(), devs)
		},
	}
	cmd.Flags().StringVar(&devRoot, "dev", "/dev", "directory holding the video device nodes")
	return cmd
}

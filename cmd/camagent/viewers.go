package main

import (
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/camagent/camagent/internal/feature/identity"
)

func newViewersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "viewers",
		Short: "List or revoke the viewers paired with this camera",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List paired and revoked viewers",
		Args:  cobra.NoArgs,
	}
	listFlags := bindAgentFlags(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		store, err := openViewerStore(listFlags)
		if err != nil {
			return err
		}
		viewers, err := store.List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKEY\tPAIRED\tLAST SEEN\tSTATE")
		for _, v := range viewers {
			state, seen := "paired", "-"
			if v.Revoked() {
				state = "revoked " + v.RevokedAt.Local().Format("2006-01-02 15:04")
			}
			if !v.LastSeen.IsZero() {
				seen = v.LastSeen.Local().Format("2006-01-02 15:04")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, identity.ShortFingerprint(v.Fingerprint),
				v.PairedAt.Local().Format("2006-01-02 15:04"), seen, state)
		}
		return tw.Flush()
	}
	revoke := &cobra.Command{
		Use:   "revoke NAME|KEY-PREFIX",
		Short: "Revoke a viewer: it is disconnected and refused from now on",
		Args:  cobra.ExactArgs(1),
	}
	revokeFlags := bindAgentFlags(revoke)
	revoke.RunE = func(cmd *cobra.Command, args []string) error {
		store, err := openViewerStore(revokeFlags)
		if err != nil {
			return err
		}
		v, err := store.Revoke(args[0])
		if err != nil {
			return err
		}
		// The running agent closes its connections and removes its
		// relay locators within a second (docs/relay.md).
		fmt.Fprintf(cmd.OutOrStdout(), "revoked %s (key %s)\n", v.Name, identity.ShortFingerprint(v.Fingerprint))
		return nil
	}
	cmd.AddCommand(list, revoke)
	return cmd
}

func openViewerStore(flags *agentFlags) (*identity.ViewerStore, error) {
	cfg, err := flags.load()
	if err != nil {
		return nil, err
	}
	return identity.OpenViewerStore(filepath.Join(cfg.StateDir, identity.ViewersFile))
}

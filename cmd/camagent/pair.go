package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/camagent/camagent/internal/core/agent"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/internal/feature/pairing"
	"github.com/camagent/camagent/p2p/relayclient"
)

func newPairCommand() *cobra.Command {
	var (
		ttl     time.Duration
		viewer  string
		addrs   []string
		uriOnly bool
	)
	cmd := &cobra.Command{
		Use:     "pair",
		Aliases: []string{"pairing"},
		Short:   "Print a one-time pairing code and QR for a new viewer",
		Long: `Print a one-time pairing offer: a code, the URI a viewer joins with
(camagent join URI) and the same URI as a QR code for a phone. The code works
once and expires after --ttl. Run it on the camera, next to the running agent.`,
		Args: cobra.NoArgs,
	}
	flags := bindAgentFlags(cmd)
	cmd.Flags().DurationVar(&ttl, "ttl", 10*time.Minute, "how long the code stays valid")
	cmd.Flags().StringVar(&viewer, "viewer", "", "name to register the viewer under (default: the name it gives)")
	cmd.Flags().StringSliceVar(&addrs, "addr", nil, "address(es) viewers should dial, host:port (default: from listen and the interfaces, plus the camera's current public addresses at its relays)")
	cmd.Flags().BoolVar(&uriOnly, "uri-only", false, "print only the pairing URI (for scripts)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := flags.load()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return err
		}
		id, err := identity.LoadOrCreate(cfg.StateDir)
		if err != nil {
			return err
		}
		codes, err := pairing.OpenCodeStore(pairing.CodesPath(cfg.StateDir))
		if err != nil {
			return err
		}
		// Explicit --addr values replace all the addresses offered;
		// the relay URLs (to locate the camera) stay.
		var relayAddrs []string
		if len(addrs) == 0 {
			if addrs, err = advertisedAddrs(cfg.Listen); err != nil {
				return err
			}
			// Behind NAT the LAN addresses reach only LAN viewers; the
			// public addresses the relays gave the running agent reach
			// the rest without a lookup. A stale file costs nothing:
			// join also finds the camera through the relays.
			if len(cfg.Relay.URLs) > 0 {
				if relayAddrs, err = agent.ReadPublicAddrs(cfg.StateDir); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
				}
			}
		}
		issued, err := codes.Create(viewer, ttl)
		if err != nil {
			return err
		}
		offer := pairing.Offer{Name: cfg.Name, Fingerprint: id.Fingerprint, Code: issued.Code, Addrs: addrs, RelayAddrs: relayAddrs}
		if offer.Relays, err = relayclient.OfferURLs(cfg.Relay.URLs, id, issued.ID); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if uriOnly {
			fmt.Fprintln(out, offer.String())
			return nil
		}
		if err := pairing.RenderQR(out, offer.String()); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nCamera:      %s (key %s)\n", cfg.Name, identity.ShortFingerprint(id.Fingerprint))
		fmt.Fprintf(out, "Code:        %s (one use, expires %s)\n", issued.Code, issued.Expires.Local().Format("15:04:05"))
		fmt.Fprintf(out, "On a viewer: camagent join '%s'\n", offer.String())
		return nil
	}
	return cmd
}

// advertisedAddrs turns the listen address into addresses a viewer can
// dial: the host itself when it is specific, otherwise every non-loopback
// interface address (loopback last, for viewers on the camera itself).
func advertisedAddrs(listen string) ([]string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", listen, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p == 0 {
		return nil, fmt.Errorf("listen %q: a fixed port is needed to pair (or pass --addr)", listen)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return []string{net.JoinHostPort(host, port)}, nil
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out, loop []string
	for _, a := range ifaddrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.IsLinkLocalUnicast() {
			continue
		}
		hp := net.JoinHostPort(ipnet.IP.String(), port)
		if ipnet.IP.IsLoopback() {
			loop = append(loop, hp)
		} else {
			out = append(out, hp)
		}
	}
	return append(out, loop...), nil
}

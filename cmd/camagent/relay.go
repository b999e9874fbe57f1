package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/camagent/camagent/p2p/relayserver"
)

func newRelayCommand() *cobra.Command {
	var (
		listen, publicIP, stateDir, metrics, logLevel, tokenFile string
		tokens, keys, allowTargets                               []string
		cfg                                                      relayserver.Config
	)
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Run a MASQUE relay (HTTP/3 CONNECT-UDP with bind) for cameras behind NAT",
		Long: `Run a MASQUE relay: cameras register a public UDP address with it
(RFC 9298 CONNECT-UDP with draft-ietf-masque-connect-udp-listen) and viewers
reach them there with ordinary, end-to-end encrypted QUIC. Only cameras with
a token (--token-file, $CAMAGENT_RELAY_TOKEN or --token) or an --allow-key
may register. Prints the relay URL for camera configs (relay.urls) on start.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", ":4443", "UDP address of the HTTP/3 server")
	f.StringVar(&publicIP, "public-ip", "", "address to bind and advertise registrations on (default: the listen host)")
	f.StringVar(&stateDir, "state-dir", "/var/lib/camagent-relay", "directory for the relay's key")
	f.StringSliceVar(&tokens, "token", nil, "bearer token that may register (repeatable; visible in ps: prefer --token-file or $"+config.TokenEnv+")")
	f.StringVar(&tokenFile, "token-file", "", "file of bearer tokens that may register, one a line")
	f.StringSliceVar(&keys, "allow-key", nil, "camera key fingerprint that may register (repeatable)")
	f.StringVar(&metrics, "metrics", "", "TCP address for Prometheus metrics (/metrics), empty for none")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.IntVar(&cfg.MaxRegistrations, "max-registrations", 10000, "registrations in total")
	f.IntVar(&cfg.MaxPerIdentity, "max-per-identity", 64, "registrations and CONNECT-UDP sockets per token or allow-listed key")
	f.IntVar(&cfg.MaxPerSource, "max-per-source", 128, "registrations and CONNECT-UDP sockets per client source prefix (IPv4 /24, IPv6 /56)")
	f.IntVar(&cfg.MaxContexts, "max-contexts", 64, "compression contexts per registration")
	f.Float64Var(&cfg.DatagramRate, "datagram-rate", relayserver.DefaultDatagramRate, "datagrams per second per registration or CONNECT-UDP socket, each way")
	f.IntVar(&cfg.DatagramBurst, "datagram-burst", relayserver.DefaultDatagramBurst, "burst of --datagram-rate")
	f.Float64Var(&cfg.LocateRate, "locate-rate", 20, "locate requests per second per source prefix")
	f.Float64Var(&cfg.STUNRate, "stun-rate", 20, "STUN answers per second per source prefix")
	f.StringSliceVar(&allowTargets, "allow-target", nil, "prefix the relay may send to although it is special-purpose (repeatable; tests and labs only, e.g. 203.0.113.0/24; the relay's own non-loopback addresses stay refused)")
	f.DurationVar(&cfg.ContextIdle, "context-idle", time.Minute, "close proxy-assigned contexts unused this long")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		log, err := logging.New(os.Stderr, "text", logLevel)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return err
		}
		id, err := identity.LoadOrCreate(stateDir)
		if err != nil {
			return err
		}
		if cmd.Flags().Changed("token") {
			log.Warn("--token is visible to every user (ps, /proc/PID/cmdline): use --token-file or $" + config.TokenEnv)
		}
		if tokenFile != "" {
			more, err := config.ReadTokenFile(tokenFile)
			if err != nil {
				return fmt.Errorf("--token-file: %w", err)
			}
			tokens = append(tokens, more...)
		}
		if env := strings.TrimSpace(os.Getenv(config.TokenEnv)); env != "" {
			tokens = append(tokens, env)
		}
		if len(tokens) == 0 && len(keys) == 0 {
			return errors.New("no --token and no --allow-key: nobody could register")
		}
		pc, err := net.ListenPacket("udp", listen)
		if err != nil {
			return err
		}
		defer pc.Close()
		ip, err := relayPublicIP(publicIP, pc.LocalAddr())
		if err != nil {
			return err
		}
		cfg.Identity, cfg.PublicIP, cfg.Tokens, cfg.Keys, cfg.Logger = id, ip, tokens, keys, log
		for _, a := range allowTargets {
			p, err := parsePrefixOrAddr(a)
			if err != nil {
				return fmt.Errorf("--allow-target: %w", err)
			}
			cfg.AllowTargets = append(cfg.AllowTargets, p)
			log.Warn("target policy override: special-purpose prefix admitted as a target", "prefix", p.String())
		}
		srv, err := relayserver.New(cfg)
		if err != nil {
			return err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		url := relayclient.RelayURL{Addr: netip.AddrPortFrom(ip, uint16(port)).String(), Fingerprint: id.Fingerprint}
		fmt.Fprintf(cmd.OutOrStdout(), "relay url: %s\n", url)
		log.Info("relay listening", "listen", pc.LocalAddr().String(), "url", url.String())
		if metrics != "" {
			ms := &http.Server{Addr: metrics, Handler: metricsMux(srv), ReadHeaderTimeout: 5 * time.Second}
			go func() {
				if err := ms.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
					log.Error("metrics server", "err", err)
				}
			}()
			defer ms.Close()
		}
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		go func() { <-ctx.Done(); srv.Close() }()
		return srv.Serve(pc)
	}
	return cmd
}

func metricsMux(srv *relayserver.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", srv.Metrics().Handler())
	return mux
}

func relayPublicIP(flag string, local net.Addr) (netip.Addr, error) {
	if flag != "" {
		ip, err := netip.ParseAddr(flag)
		if err != nil {
			return ip, fmt.Errorf("--public-ip: %w", err)
		}
		return ip, nil
	}
	ip := local.(*net.UDPAddr).AddrPort().Addr().Unmap()
	if ip.IsUnspecified() {
		return ip, errors.New("--public-ip is needed when --listen has no specific address")
	}
	return ip, nil
}

// parsePrefixOrAddr reads a prefix ("203.0.113.0/24") or a single address
// ("127.0.0.1", as a /32 or /128).
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a prefix nor an address", s)
	}
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

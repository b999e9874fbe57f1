package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/portspray"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/camagent/camagent/p2p/traversal"
	"github.com/camagent/camagent/stream"
)

// relayState is the agent's relay side: the transport over the Mux of the
// direct socket and the relay tunnels, and the Keeper of registrations.
type relayState struct {
	tr     *quic.Transport
	mux    *relayclient.Mux
	keeper *relayclient.Keeper
	nat    *natState
}

// listen opens the agent's one QUIC listener. Without relays it is a plain
// UDP listener; with relays it runs on a relayclient.Mux so that viewers coming
// through a relay reach the same listener, TLS policy and hub as direct ones.
func listen(cfg config.Config, id *identity.Identity, tlsConf *tls.Config, locators *locatorSource, log *slog.Logger) (*quic.Listener, *relayState, error) {
	if len(cfg.Relay.URLs) == 0 {
		ln, err := quic.ListenAddr(cfg.Listen, tlsConf, stream.QUICConfig())
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
		return ln, nil, nil
	}
	var relays []relayclient.RelayURL
	for _, s := range cfg.Relay.URLs {
		r, err := relayclient.ParseRelayURL(s)
		if err != nil {
			return nil, nil, fmt.Errorf("relay.urls: %w", err)
		}
		relays = append(relays, r)
	}
	udp, err := net.ListenPacket("udp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	mux := relayclient.NewMux(udp)
	tr := &quic.Transport{Conn: mux}
	ln, err := tr.Listen(tlsConf, stream.QUICConfig())
	if err != nil {
		mux.Close()
		return nil, nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	nat, err := newNATState(tr, mux, log.With("component", "nat"))
	if err != nil {
		ln.Close()
		tr.Close()
		mux.Close()
		return nil, nil, fmt.Errorf("NAT traversal: %w", err)
	}
	pub, err := newPublicAddrs(cfg.StateDir)
	if err != nil {
		nat.close()
		ln.Close()
		tr.Close()
		mux.Close()
		return nil, nil, fmt.Errorf("relay state: %w", err)
	}
	plog := log.With("component", "relay")
	// Registrations leave from the listener's own transport, so the
	// address each relay observes is the NAT mapping of the socket viewers
	// are punched toward (docs/nat-traversal.md §6).
	keeper := relayclient.NewKeeper(relayclient.KeeperConfig{
		Relays: relays, Identity: id, Token: cfg.Relay.Token, Mux: mux, Transport: tr,
		// Found only under the paired viewers' and live codes'
		// locators, and shut to everyone who did not locate it first
		// (docs/relay.md, "Not enumerable").
		Locators: locators.hashes, Gate: true,
		OnChange: func(relay string, c *relayclient.Conn) {
			nat.relayChanged(relay, c)
			if err := pub.relayChanged(relay, c); err != nil {
				// Only `camagent pair` reads it, and viewers find the
				// camera through the relay without it.
				plog.Warn("public address not saved", "file", PublicFile, "err", err)
			}
		},
		Logger: plog,
	})
	return ln, &relayState{tr: tr, mux: mux, keeper: keeper, nat: nat}, nil
}

func (r *relayState) run(ctx context.Context) {
	if r != nil {
		r.keeper.Run(ctx)
	}
}

func (r *relayState) close() {
	if r != nil {
		r.keeper.Close() // stops run, or keeps it from starting
		r.nat.close()
		r.tr.Close()
		r.mux.Close()
	}
}

// natFor returns the NAT traversal option for one video connection: none
// without relays.
func (r *relayState) natFor(conn *quic.Conn, fp string, log *slog.Logger) []stream.ServeOption {
	if r == nil || r.nat == nil {
		return nil
	}
	return []stream.ServeOption{stream.WithNAT(func(ctx context.Context, ch natwire.Channel) {
		r.nat.serve(ctx, conn, fp, ch, log)
	})}
}

// natForPlayback runs NAT traversal for a recordings connection
// (camagent-rec/1) in the background: the camera opens one bidirectional
// stream that carries the NAT traversal messages (natwire.StreamChannel,
// docs/recording.md), so an export through the relay moves to a direct
// path like live video does. A viewer that does not know the stream
// never accepts it, and stays where it is. Nothing without relays.
func (r *relayState) natForPlayback(conn *quic.Conn, fp string, log *slog.Logger) {
	if r == nil || r.nat == nil {
		return
	}
	go func() {
		ctx := conn.Context()
		str, err := conn.OpenStreamSync(ctx)
		if err != nil {
			return
		}
		defer str.CancelRead(0)
		defer str.Close()
		r.nat.serve(ctx, conn, fp, natwire.NewStreamChannel(str), log)
	}()
}

// RelayKeeper is the agent's relay registrations, nil without relays.
func (a *Agent) RelayKeeper() *relayclient.Keeper {
	if a.relays == nil {
		return nil
	}
	return a.relays.keeper
}

// SetFanOutListener replaces how the agent opens the sockets of a
// port-spray fan-out (by default on the listen address's IP). A program
// that made the agent inside a network namespace it entered on one thread
// (the NAT lab) passes a function that opens them there. Call it before
// Run; without relays it does nothing.
func (a *Agent) SetFanOutListener(listen portspray.ListenFunc) {
	if a.relays != nil && listen != nil {
		a.relays.nat.listen = listen
	}
}

// NATStats are the NAT traversal counters of every viewer connection
// since start (zero without relays).
func (a *Agent) NATStats() traversal.ServerStats {
	if a.relays == nil {
		return traversal.ServerStats{}
	}
	return a.relays.nat.totals()
}

// ViewersRelayed is how many live viewer connections (video and
// recordings) run through a relay now, not on a direct path.
func (a *Agent) ViewersRelayed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for conn := range a.conns {
		if _, relayed := conn.RemoteAddr().(*relayclient.RelayedAddr); relayed {
			n++
		}
	}
	return n
}

// NATMapping is the camera's NAT mapping behaviour as measured through its
// relay registrations (unknown without relays).
func (a *Agent) NATMapping() natwire.Mapping {
	if a.relays == nil {
		return natwire.MappingUnknown
	}
	return a.relays.nat.Mapping()
}

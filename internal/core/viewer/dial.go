package viewer

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/dialrace"
	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/camagent/camagent/stream"
)

// Route selects how a Dialer reaches a camera.
type Route string

// Routes: direct addresses only, relays only, or direct first then relays.
const (
	RouteAuto   Route = "auto"
	RouteDirect Route = "direct"
	RouteRelay  Route = "relay"
)

// ParseRoute reads a route by name; "" is RouteAuto.
func ParseRoute(s string) (Route, error) {
	switch r := Route(s); r {
	case "":
		return RouteAuto, nil
	case RouteAuto, RouteDirect, RouteRelay:
		return r, nil
	}
	return "", fmt.Errorf("route %q: want auto, direct or relay", s)
}

// RelayHeadStart is how long a camera's direct addresses have to
// themselves before the relay path starts too (--via auto). A direct path
// on a LAN answers in a few milliseconds and wins; a direct address that
// silently drops packets (the camera is behind NAT) costs only this, not a
// handshake timeout.
const RelayHeadStart = 300 * time.Millisecond

// Dialer is the viewer's one way to connect to a paired camera, for every
// protocol (live video, recordings) and every route. It races the ways
// happy-eyeballs style: all direct addresses at once, then each relay
// after a head start (or as soon as everything before it failed). The
// first connection to complete its handshake wins; the others are
// cancelled or closed.
//
// Through a relay, the relay tells where the camera's registration is now
// and the viewer dials that public address from a socket of its own
// (Link), with the same end-to-end TLS pinned both ways: the relay only
// forwards UDP, whatever the ALPN.
type Dialer struct {
	// Identity is the viewer's key, presented to the camera.
	Identity *identity.Identity
	// Route is how to reach the camera; "" means RouteAuto.
	Route Route
	// ALPN is the protocol to speak; "" means live video (stream.ALPN).
	ALPN string
	// HeadStart is the lead of each attempt over the next; 0 means
	// RelayHeadStart.
	HeadStart time.Duration
	// After is the clock for head starts; nil means time.After.
	After func(time.Duration) <-chan time.Time
	// Trace, if set, hears each attempt start and end ("direct",
	// "relay HOST:PORT").
	Trace  func(dialrace.Event)
	Logger *slog.Logger
}

// Dial connects to cam.
func (d Dialer) Dial(ctx context.Context, cam identity.Camera) (*Link, error) {
	route, err := ParseRoute(string(d.Route))
	if err != nil {
		return nil, err
	}
	log := logging.Discard(d.Logger)
	tlsConf := identity.ClientTLSConfig(d.Identity, cam.Fingerprint, cmp.Or(d.ALPN, stream.ALPN))
	qconf := stream.QUICConfig()
	var attempts []dialrace.Attempt[*Link]
	var errs []error
	if route != RouteRelay && len(cam.Addrs) > 0 {
		attempts = append(attempts, dialrace.Attempt[*Link]{Name: "direct", Dial: func(ctx context.Context) (*Link, error) {
			conn, err := dialDirect(ctx, cam.Addrs, tlsConf, qconf)
			if err != nil {
				return nil, err
			}
			return directLink(conn, log), nil
		}})
	}
	if route != RouteDirect {
		if len(cam.Relays) == 0 {
			errs = append(errs, fmt.Errorf("camera %q has no relay", cam.Name))
		}
		for _, s := range cam.Relays {
			r, err := relayclient.ParseRelayURL(s)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			attempts = append(attempts, dialrace.Attempt[*Link]{Name: "relay " + r.Addr, Dial: func(ctx context.Context) (*Link, error) {
				lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				pub, err := relayclient.Locate(lctx, r, d.Identity)
				cancel()
				if err != nil {
					return nil, err
				}
				log.Debug("camera located", "relay", r.Addr, "public", pub.String())
				dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				var relay netip.AddrPort
				if ua, err := net.ResolveUDPAddr("udp", r.Addr); err == nil {
					relay = netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port())
				}
				l, err := dialRelayed(dctx, pub, relay, tlsConf, qconf, log)
				if err != nil {
					return nil, fmt.Errorf("camera at %s: %w", pub, err)
				}
				return l, nil
			}})
		}
	}
	if len(attempts) == 0 {
		if route == RouteDirect {
			errs = append(errs, fmt.Errorf("camera %q has no known address", cam.Name))
		}
		return nil, fmt.Errorf("camera %q unreachable: %w", cam.Name, errors.Join(errs...))
	}
	l, _, err := dialrace.First(ctx, dialrace.Config[*Link]{
		HeadStart: cmp.Or(d.HeadStart, RelayHeadStart),
		After:     d.After,
		Discard:   func(l *Link) { l.Conn.CloseWithError(0, "another path won") },
		Trace:     d.Trace,
	}, attempts)
	if err != nil {
		return nil, fmt.Errorf("camera %q unreachable: %w", cam.Name, errors.Join(append(errs, err)...))
	}
	return l, nil
}

// dialDirect dials every one of a camera's known addresses at once: a LAN
// address that is stale or a public one that the camera's NAT drops costs
// nothing while another answers. The first handshake wins.
func dialDirect(ctx context.Context, addrs []string, tlsConf *tls.Config, qconf *quic.Config) (*quic.Conn, error) {
	var attempts []dialrace.Attempt[*quic.Conn]
	for _, addr := range addrs {
		attempts = append(attempts, dialrace.Attempt[*quic.Conn]{Name: addr, Dial: func(ctx context.Context) (*quic.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return quic.DialAddr(ctx, addr, tlsConf, qconf)
		}})
	}
	conn, _, err := dialrace.First(ctx, dialrace.Config[*quic.Conn]{
		Discard: func(c *quic.Conn) { c.CloseWithError(0, "another address won") },
	}, attempts)
	return conn, err
}

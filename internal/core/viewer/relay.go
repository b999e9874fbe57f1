package viewer

import (
	"cmp"
	"context"
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

// Route selects how DialRoute reaches a camera.
type Route string

// Routes: direct addresses only, relays only, or direct first then relays.
const (
	RouteAuto   Route = "auto"
	RouteDirect Route = "direct"
	RouteRelay  Route = "relay"
)

// RelayHeadStart is how long a camera's direct addresses have to
// themselves before the relay path starts too (--via auto). A direct path
// on a LAN answers in a few milliseconds and wins; a direct address that
// silently drops packets (the camera is behind NAT) costs only this, not a
// handshake timeout.
const RelayHeadStart = 300 * time.Millisecond

// DialRoute connects to a paired camera: its known addresses and (unless
// route is direct) its relays, raced (see Dialer). The relay tells where
// the camera's registration is now, and the viewer dials that public
// address with the same end-to-end TLS pinned both ways. The relay only
// forwards UDP.
func DialRoute(ctx context.Context, id *identity.Identity, cam identity.Camera, qconf *quic.Config, route Route, log *slog.Logger) (*quic.Conn, error) {
	l, err := DialLink(ctx, id, cam, qconf, route, log)
	if err != nil {
		return nil, err
	}
	return l.Conn, nil
}

// DialLink is DialRoute returning the Link, on which StartTraversal moves a
// relayed connection to a direct path when one opens.
func DialLink(ctx context.Context, id *identity.Identity, cam identity.Camera, qconf *quic.Config, route Route, log *slog.Logger) (*Link, error) {
	return Dialer{Logger: log}.DialLink(ctx, id, cam, qconf, route)
}

// DialLinkALPN is DialLink for another of the camera's protocols, such as
// recordings (camagent-rec/1). Nothing else differs: the relay forwards
// UDP without looking at the ALPN, and the camera's one listener serves
// every protocol whichever way the packets came.
func DialLinkALPN(ctx context.Context, id *identity.Identity, cam identity.Camera, qconf *quic.Config, route Route, alpn string, log *slog.Logger) (*Link, error) {
	return Dialer{Logger: log, ALPN: alpn}.DialLink(ctx, id, cam, qconf, route)
}

// Dialer races the ways to a camera happy-eyeballs style: all direct
// addresses at once, then each relay after a head start (or as soon as
// everything before it failed). The first connection to complete its
// handshake wins; the others are cancelled or closed. The zero value is
// ready to use.
type Dialer struct {
	// HeadStart is the lead of each attempt over the next; 0 means
	// RelayHeadStart.
	HeadStart time.Duration
	// After is the clock for head starts; nil means time.After.
	After func(time.Duration) <-chan time.Time
	// Trace, if set, hears each attempt start and end ("direct",
	// "relay HOST:PORT").
	Trace  func(dialrace.Event)
	Logger *slog.Logger
	// ALPN is the protocol to speak; "" means live video (stream.ALPN).
	ALPN string
}

// DialLink connects to cam by route.
func (d Dialer) DialLink(ctx context.Context, id *identity.Identity, cam identity.Camera, qconf *quic.Config, route Route) (*Link, error) {
	log := logging.Discard(d.Logger)
	alpn := cmp.Or(d.ALPN, stream.ALPN)
	var attempts []dialrace.Attempt[*Link]
	var errs []error
	if route != RouteRelay && len(cam.Addrs) > 0 {
		attempts = append(attempts, dialrace.Attempt[*Link]{Name: "direct", Dial: func(ctx context.Context) (*Link, error) {
			conn, err := DialALPN(ctx, id, cam, qconf, alpn)
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
		tlsConf := identity.ClientTLSConfig(id, cam.Fingerprint, alpn)
		for _, s := range cam.Relays {
			r, err := relayclient.ParseRelayURL(s)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			attempts = append(attempts, dialrace.Attempt[*Link]{Name: "relay " + r.Addr, Dial: func(ctx context.Context) (*Link, error) {
				lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				pub, err := relayclient.Locate(lctx, r, id)
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

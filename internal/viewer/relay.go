package viewer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/identity"
	"github.com/camagent/camagent/internal/logging"
	"github.com/camagent/camagent/p2p/tunnel"
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

// DialRoute connects to a paired camera: its known addresses first (unless
// route is relay), then, if none answers, through each of its relays: the
// relay tells where the camera's registration is now, and the viewer dials
// that public address with the same end-to-end TLS pinned both ways. The
// relay only forwards UDP.
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
	return DialLinkALPN(ctx, id, cam, qconf, route, stream.ALPN, log)
}

// DialLinkALPN is DialLink for another of the camera's protocols, such as
// recordings (camagent-rec/1). Nothing else differs: the relay forwards
// UDP without looking at the ALPN, and the camera's one listener serves
// every protocol whichever way the packets came.
func DialLinkALPN(ctx context.Context, id *identity.Identity, cam identity.Camera, qconf *quic.Config, route Route, alpn string, log *slog.Logger) (*Link, error) {
	log = logging.Discard(log)
	var errs []error
	if route != RouteRelay && len(cam.Addrs) > 0 {
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := DialALPN(dctx, id, cam, qconf, alpn)
		cancel()
		if err == nil {
			return directLink(conn, log), nil
		}
		errs = append(errs, err)
	}
	if route == RouteDirect {
		return nil, errors.Join(errs...)
	}
	if len(cam.Relays) == 0 {
		errs = append(errs, fmt.Errorf("camera %q has no relay", cam.Name))
	}
	tlsConf := identity.ClientTLSConfig(id, cam.Fingerprint, alpn)
	for _, s := range cam.Relays {
		r, err := tunnel.ParseRelayURL(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		pub, err := tunnel.Locate(lctx, r, id)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.Debug("camera located", "relay", r.Addr, "public", pub.String())
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		l, err := dialRelayed(dctx, pub, tlsConf, qconf, log)
		cancel()
		if err == nil {
			return l, nil
		}
		errs = append(errs, fmt.Errorf("via relay %s (%s): %w", r.Addr, pub, err))
	}
	return nil, fmt.Errorf("camera %q unreachable: %w", cam.Name, errors.Join(errs...))
}

package agent

import (
	"context"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/internal/feature/pairing"
	"github.com/camagent/camagent/storage/playback"
	"github.com/camagent/camagent/stream"
	"github.com/camagent/camagent/stream/wire"
)

// acceptLoop hands each connection to the protocol its ALPN names. The TLS
// layer has already refused unpaired viewers on the video ALPN.
func (a *Agent) acceptLoop(ctx context.Context) error {
	for {
		conn, err := a.ln.Accept(ctx)
		if err != nil {
			return err
		}
		a.serving.Add(1)
		go func() {
			defer a.serving.Done()
			a.serveConn(ctx, conn)
		}()
	}
}

func (a *Agent) serveConn(ctx context.Context, conn *quic.Conn) {
	state := conn.ConnectionState().TLS
	fp := identity.PeerFingerprint(state)
	log := a.log.With("peer", conn.RemoteAddr().String(), "key", identity.ShortFingerprint(fp))
	if p := state.NegotiatedProtocol; p == stream.ALPN || p == playback.ALPN {
		release, ok := a.admitViewerConn(conn, fp, log) // limits.go
		if !ok {
			return
		}
		defer release()
	}
	switch state.NegotiatedProtocol {
	case stream.ALPN:
		// Track first, then check: a revocation after this check is seen by
		// watchRevocations, one before it (after the handshake) is seen here.
		a.track(conn, fp, true)
		defer a.track(conn, fp, false)
		v, ok := a.viewers.Allowed(fp)
		if !ok {
			conn.CloseWithError(quic.ApplicationErrorCode(wire.ErrorUnauthorised), "not paired")
			return
		}
		log.Info("viewer connected", "viewer", v.Name)
		if err := a.viewers.MarkSeen(fp); err != nil {
			log.Warn("cannot record last seen", "err", err)
		}
		err := a.hub.Serve(ctx, conn, v.Name, a.relays.natFor(conn, fp, log)...)
		log.Info("viewer left", "viewer", v.Name, "reason", err)
	case playback.ALPN:
		a.track(conn, fp, true) // revocation closes recordings access too
		defer a.track(conn, fp, false)
		v, ok := a.viewers.Allowed(fp)
		if !ok {
			conn.CloseWithError(quic.ApplicationErrorCode(wire.ErrorUnauthorised), "not paired")
			return
		}
		log.Info("viewer opened recordings", "viewer", v.Name)
		a.relays.natForPlayback(conn, fp, log)
		err := playback.Serve(ctx, conn, a.rec.playbackSource(), log)
		log.Debug("recordings session ended", "viewer", v.Name, "reason", err)
	case pairing.ALPN:
		out, err := pairing.Serve(ctx, conn, a.codes, a.viewers, a.cfg.Name, a.pairingRelays())
		if err != nil {
			log.Warn("pairing refused", "err", err)
			return
		}
		if out.Refresh {
			log.Info("viewer fetched its relay locators", "viewer", out.Viewer.Name)
			return
		}
		a.relays.refreshLocators() // its locator, at once
		log.Info("viewer paired", "viewer", out.Viewer.Name)
	default:
		conn.CloseWithError(0, "unknown protocol")
	}
}

// pairingRelays hands a newly paired viewer its relay URLs, with its own
// locator secrets, only once its locator is at the relays: pairing.Serve
// calls it after the viewer is in the store and before the reply, so the
// LOCATORS capsule leaves ahead of the reply and the viewer's first locate
// finds the camera. (Refreshing after the reply raced that locate: the
// viewer's first dial got "not registered" about once in 25 runs.)
func (a *Agent) pairingRelays() pairing.RelaysFunc {
	urls := viewerRelays(a.cfg.Relay.URLs, a.id)
	if urls == nil {
		return nil
	}
	return func(v identity.Viewer) ([]string, error) {
		a.relays.refreshLocators()
		return urls(v)
	}
}

func (a *Agent) track(conn *quic.Conn, fp string, live bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if live {
		a.conns[conn] = fp
	} else {
		delete(a.conns, conn)
	}
}

// watchRevocations closes the live connections of viewers revoked while
// they watch: revoking must take effect at once, not at the next connect.
// It checks each live connection against the store (level-triggered), so a
// viewer paired and revoked within one interval is caught as well.
//
// Pairings, revocations and codes also change what the camera is found
// under at its relays: those are checked four times as often, so that an
// offer scanned right after `camagent pair` locates the camera at once
// (a stat of viewers.json and codes.json each time, unless they changed).
func (a *Agent) watchRevocations(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	loc := time.NewTicker(locatorRefresh)
	defer loc.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-loc.C:
			a.relays.refreshLocators()
			continue
		case <-t.C:
		}
		a.relays.refreshLocators()
		a.mu.Lock()
		for conn, fp := range a.conns {
			if _, ok := a.viewers.Allowed(fp); !ok {
				a.log.Info("closing connection of revoked viewer", "key", identity.ShortFingerprint(fp))
				conn.CloseWithError(quic.ApplicationErrorCode(wire.ErrorUnauthorised), "revoked")
			}
		}
		a.mu.Unlock()
	}
}

package agent

import (
	"bytes"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/internal/feature/pairing"
	"github.com/camagent/camagent/p2p/relayclient"
)

// locatorSource is what the camera registers under at each relay
// (docs/relay.md, "Finding the camera again"): one locator per active
// viewer and one per live pairing code, derived from the camera's key, so
// that revoking a viewer removes exactly its way of finding the camera and
// nobody else's changes.
type locatorSource struct {
	id      *identity.Identity
	viewers *identity.ViewerStore
	codes   *pairing.CodeStore
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	lastErr string // logged once until it changes: hashes runs every second
}

func (l *locatorSource) warn(what string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if msg := what + ": " + err.Error(); msg != l.lastErr {
		l.lastErr = msg
		l.log.Warn("relay locators: "+what+" unreadable", "err", err)
	}
}

// hashes are the locators of relay r, sorted (so that an unchanged set
// compares equal and is not sent again).
func (l *locatorSource) hashes(r relayclient.RelayURL) [][32]byte {
	var out [][32]byte
	viewers, err := l.viewers.List()
	if err != nil {
		// A broken viewers.json admits nobody (identity.ViewerStore);
		// no viewer then finds the camera either.
		l.warn("viewers", err)
	}
	for _, v := range viewers {
		if !v.Revoked() {
			out = append(out, relayclient.LocatorHash(relayclient.ViewerSecret(l.id, r.Fingerprint, v.Fingerprint, viewerEpoch(v))))
		}
	}
	codes, err := l.codes.Pending()
	if err != nil {
		l.warn("codes", err)
	}
	now := l.now()
	for _, c := range codes {
		if !c.Burned && now.Before(c.Expires) {
			out = append(out, relayclient.LocatorHash(relayclient.PairingSecret(l.id, r.Fingerprint, c.ID)))
		}
	}
	slices.SortFunc(out, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// viewerEpoch is the part of a viewer's locator that changes when the same
// key is paired again: when it was paired.
func viewerEpoch(v identity.Viewer) string {
	return v.PairedAt.UTC().Format(time.RFC3339Nano)
}

// viewerRelays are the relay URLs, with its own locator secrets, that the
// viewer v keeps in its cameras.json: the pairing reply and a paired
// viewer's refresh carry them (pairing.RelaysFunc).
func viewerRelays(relays []string, id *identity.Identity) pairing.RelaysFunc {
	if len(relays) == 0 {
		return nil
	}
	return func(v identity.Viewer) ([]string, error) {
		return relayclient.ViewerURLs(relays, id, v.Fingerprint, viewerEpoch(v))
	}
}

// ViewerRelayURLs are the relay URLs the paired viewer fp keeps (for
// tests and tools; viewers get them in the pairing reply).
func (a *Agent) ViewerRelayURLs(fp string) ([]string, error) {
	v, ok := a.viewers.Allowed(fp)
	if !ok {
		return nil, pairing.ErrNotPaired
	}
	return viewerRelays(a.cfg.Relay.URLs, a.id)(v)
}

// locatorRefresh is how often the agent checks whether its locators
// changed (a new code or viewer, a revocation, an expired code).
const locatorRefresh = 250 * time.Millisecond

// refreshLocators sends each live registration its current locators if a
// viewer was paired or revoked, or a code made or used up.
func (r *relayState) refreshLocators() {
	if r != nil {
		r.keeper.RefreshLocators()
	}
}

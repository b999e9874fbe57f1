package relayserver

import (
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/camagent/camagent/p2p/masque/wire"
)

// locatorGrace is how long a locator stays bound to its key after the
// key's last registration holding it ended: a camera that reconnects
// after a network blip or a relay connection loss finds its locators
// still its own, and nobody can take them over in between. (After a
// relay restart the bindings are gone; a locator is only known to the
// camera and the one viewer it was made for, docs/relay.md.)
const locatorGrace = 10 * time.Minute

// locatorEntry is one locator (SHA-256 of a locator secret): the key that
// first registered it and every live registration of that key that holds
// it, oldest first. Locate answers the newest; when it ends, the next
// newest takes over.
type locatorEntry struct {
	owner string // fingerprint of the key that registered it first
	regs  []*tunnel
	idle  time.Time // when regs became empty
}

// tunnelLocators is a registration's side of the bookkeeping (guarded by
// Server.mu).
type tunnelLocators struct {
	owner string // fingerprint of the registering client's key; "" if none
	set   map[[32]byte]struct{}
}

// parseLocators parses Camagent-Locator: a comma-separated list of
// 64-hex-digit hashes.
func parseLocators(h string) ([][32]byte, error) {
	if strings.TrimSpace(h) == "" {
		return nil, nil
	}
	parts := strings.Split(h, ",")
	if len(parts) > profile.MaxLocators {
		return nil, refuse(http.StatusBadRequest, "more than %d locators", profile.MaxLocators)
	}
	out := make([][32]byte, 0, len(parts))
	for _, p := range parts {
		b, err := hex.DecodeString(strings.TrimSpace(p))
		if err != nil || len(b) != 32 {
			return nil, refuse(http.StatusBadRequest, "%s must be 64 hex digits each", profile.HeaderLocator)
		}
		out = append(out, [32]byte(b))
	}
	return out, nil
}

// parseLocatorsCapsule parses the value of a LOCATORS capsule.
func parseLocatorsCapsule(v []byte) ([][32]byte, error) {
	if len(v)%32 != 0 || len(v) > 32*profile.MaxLocators {
		return nil, errors.Join(wire.ErrMalformed, errors.New("locators capsule of a bad length"))
	}
	out := make([][32]byte, 0, len(v)/32)
	for ; len(v) > 0; v = v[32:] {
		out = append(out, [32]byte(v[:32]))
	}
	return out, nil
}

// setLocators replaces t's locators with hashes and returns how many were
// refused: a locator bound to another key is never taken over, and one
// from a client without a key cannot be bound at all.
func (s *Server) setLocators(t *tunnel, hashes [][32]byte) (refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, live := s.tunnels[t]; !live {
		return len(hashes)
	}
	now := s.cfg.Now()
	want := make(map[[32]byte]struct{}, len(hashes))
	for _, h := range hashes {
		want[h] = struct{}{}
	}
	for h := range t.loc.set {
		if _, keep := want[h]; !keep {
			s.detachLocked(t, h, now)
		}
	}
	set := make(map[[32]byte]struct{}, len(want))
	for h := range want {
		if _, had := t.loc.set[h]; had {
			set[h] = struct{}{}
			continue
		}
		if t.loc.owner == "" {
			refused++
			continue
		}
		e := s.locators[h]
		if e != nil && len(e.regs) == 0 && now.Sub(e.idle) > locatorGrace {
			e = nil // the binding has lapsed
		}
		if e == nil {
			e = &locatorEntry{owner: t.loc.owner}
			s.locators[h] = e
		}
		if e.owner != t.loc.owner {
			refused++
			continue
		}
		e.regs = append(e.regs, t)
		set[h] = struct{}{}
	}
	t.loc.set = set
	if refused > 0 {
		s.metrics.LocatorRefused.Add(uint64(refused))
		s.log.Warn("locators refused: bound to another key", "public", t.public.String(), "refused", refused)
	}
	return refused
}

// dropLocatorsLocked detaches every locator of t (its registration ended).
func (s *Server) dropLocatorsLocked(t *tunnel) {
	now := s.cfg.Now()
	for h := range t.loc.set {
		s.detachLocked(t, h, now)
	}
	t.loc.set = nil
}

func (s *Server) detachLocked(t *tunnel, h [32]byte, now time.Time) {
	e := s.locators[h]
	if e == nil {
		return
	}
	for i, r := range e.regs {
		if r == t {
			e.regs = append(e.regs[:i], e.regs[i+1:]...)
			break
		}
	}
	if len(e.regs) == 0 {
		e.idle = now
	}
}

// lookupLocator is the newest live registration holding h, or nil.
func (s *Server) lookupLocator(h [32]byte) *tunnel {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.locators[h]
	if e == nil || len(e.regs) == 0 {
		return nil
	}
	return e.regs[len(e.regs)-1]
}

// sweepLocators forgets bindings whose grace has run out.
func (s *Server) sweepLocators() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	for h, e := range s.locators {
		if len(e.regs) == 0 && now.Sub(e.idle) > locatorGrace {
			delete(s.locators, h)
		}
	}
}

// readLocators handles a LOCATORS capsule from the camera: its new set.
func (t *tunnel) readLocators(r http3.CapsuleReader) error {
	if r.Remaining() > 32*profile.MaxLocators {
		return errors.Join(wire.ErrMalformed, errors.New("oversized locators capsule"))
	}
	v := make([]byte, r.Remaining())
	if _, err := ioReadFull(r, v); err != nil {
		return err
	}
	hashes, err := parseLocatorsCapsule(v)
	if err != nil {
		return err
	}
	t.srv.setLocators(t, hashes)
	return nil
}

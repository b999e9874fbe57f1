// Package candidate holds a camera's or viewer's address candidates for NAT
// traversal (draft-seemann-quic-nat-traversal-02, section "Gathering Address
// Candidates"): host addresses of its own interfaces and server-reflexive
// addresses that others observed. One Set is fed from every source (the
// relay's Proxy-Public-Address, OBSERVED_ADDRESS reports from viewers and
// the relay, interface enumeration) so that every connection advertises
// the same view.
package candidate

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// Kind is how a candidate was learned.
type Kind uint8

const (
	// Host is an address of one of our own interfaces.
	Host Kind = iota + 1
	// Reflexive is our address as seen by a peer or the relay, i.e. after
	// the NATs on the way.
	Reflexive
)

func (k Kind) String() string {
	switch k {
	case Host:
		return "host"
	case Reflexive:
		return "reflexive"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Candidate is one address a peer may reach us on.
type Candidate struct {
	Addr netip.AddrPort
	Kind Kind
}

// MaxCandidates bounds a Set: each candidate costs every connection an
// ADD_ADDRESS and the peer a probe, and reports from viewers must not be
// able to grow it without bound.
const MaxCandidates = 16

// Set is a concurrency-safe set of candidates. A candidate stays while at
// least one source (e.g. "host", "relay", "viewer:<key>") vouches for it.
type Set struct {
	mu      sync.Mutex
	entries map[netip.AddrPort]*entry
	changed chan struct{} // closed and replaced on every change
}

type entry struct {
	kind    Kind
	sources map[string]struct{}
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{entries: make(map[netip.AddrPort]*entry), changed: make(chan struct{})}
}

// Usable reports whether a is an address a peer could send to: a unicast
// IP with a port, and no zone (the wire frames cannot carry one).
func Usable(a netip.AddrPort) error {
	ip := a.Addr()
	switch {
	case !ip.IsValid():
		return fmt.Errorf("invalid address")
	case a.Port() == 0:
		return fmt.Errorf("%v: port 0", a)
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return fmt.Errorf("%v: not unicast", a)
	case ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%v: broadcast", a)
	case ip.Zone() != "":
		return fmt.Errorf("%v: scoped address", a)
	}
	return nil
}

// Add records that source vouches for addr and reports whether the set
// changed. A host candidate is never demoted to reflexive (a public host
// address observed by a peer is both).
func (s *Set) Add(addr netip.AddrPort, kind Kind, source string) (bool, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if err := Usable(addr); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[addr]
	if !ok {
		if len(s.entries) >= MaxCandidates {
			return false, fmt.Errorf("candidate set full (%d)", MaxCandidates)
		}
		e = &entry{kind: kind, sources: make(map[string]struct{})}
		s.entries[addr] = e
		s.notify()
	} else if kind == Host && e.kind != Host {
		e.kind = Host
		ok = false
		s.notify()
	}
	e.sources[source] = struct{}{}
	return !ok, nil
}

// Remove withdraws source's vouching for addr; the candidate goes when no
// source is left.
func (s *Set) Remove(addr netip.AddrPort, source string) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(addr, source)
}

// RemoveSource withdraws everything source vouched for, e.g. when a viewer
// that reported our address disconnects.
func (s *Set) RemoveSource(source string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr := range s.entries {
		s.removeLocked(addr, source)
	}
}

func (s *Set) removeLocked(addr netip.AddrPort, source string) {
	e, ok := s.entries[addr]
	if !ok {
		return
	}
	if _, ok := e.sources[source]; !ok {
		return
	}
	delete(e.sources, source)
	if len(e.sources) == 0 {
		delete(s.entries, addr)
		s.notify()
	}
}

func (s *Set) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Snapshot returns the candidates, host first then by address, and a
// channel closed at the next change.
func (s *Set) Snapshot() ([]Candidate, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Candidate, 0, len(s.entries))
	for addr, e := range s.entries {
		out = append(out, Candidate{Addr: addr, Kind: e.kind})
	}
	slices.SortFunc(out, func(a, b Candidate) int {
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		return a.Addr.Compare(b.Addr)
	})
	return out, s.changed
}

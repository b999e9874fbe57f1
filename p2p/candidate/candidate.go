// Package candidate holds a camera's or viewer's address candidates for NAT
// traversal (draft-seemann-quic-nat-traversal-02, section "Gathering Address
// Candidates"): host addresses of its own interfaces and server-reflexive
// addresses that others observed. One Set holds the camera's own
// candidates (interface enumeration, the relays' observed addresses),
// which every connection advertises, and, apart from them, what each
// viewer reported (OBSERVED_ADDRESS), keyed by the viewer and advertised
// to that viewer alone (Set.Viewer): a viewer's reports can neither
// evict nor crowd out the camera's candidates or another viewer's, and
// no viewer is told to probe an address another viewer made up.
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

// MaxCandidates bounds a Set's own candidates (Add): each costs every
// connection an ADD_ADDRESS and the peer a probe. Viewers' reports do
// not count toward it (they have MaxReportsPerViewer each).
const MaxCandidates = 16

// MaxReportsPerViewer bounds the distinct addresses one viewer's reports
// (all its connections together) may hold in a Set. A genuine viewer
// reports one address per connection, and the camera admits a few
// connections per viewer key; anything beyond is refused, never evicting
// an earlier report.
const MaxReportsPerViewer = 4

// Set is a concurrency-safe set of candidates. A candidate stays while at
// least one source (e.g. "host", "relay:<addr>") vouches for it. Viewers'
// reports live apart, per viewer (Viewer).
type Set struct {
	mu      sync.Mutex
	entries map[netip.AddrPort]*entry
	changed chan struct{} // closed and replaced on every change of entries
	viewers map[string]*viewerState
}

type entry struct {
	kind    Kind
	sources map[string]struct{}
}

// viewerState is one viewer's reports and who watches them.
type viewerState struct {
	reports map[netip.AddrPort]map[string]struct{} // address -> sources (connections)
	changed chan struct{}                          // closed on a change of entries or reports
	refs    int                                    // open Viewer handles
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{entries: make(map[netip.AddrPort]*entry), changed: make(chan struct{}), viewers: make(map[string]*viewerState)}
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

// notify signals a change of the camera's own candidates to every
// watcher, viewers' views included.
func (s *Set) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
	for _, v := range s.viewers {
		v.notify()
	}
}

func (v *viewerState) notify() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// Snapshot returns the camera's own candidates (no viewer's reports),
// host first then by address, and a channel closed at the next change.
func (s *Set) Snapshot() ([]Candidate, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.ownLocked(0)
	sortCandidates(out)
	return out, s.changed
}

func (s *Set) ownLocked(extra int) []Candidate {
	out := make([]Candidate, 0, len(s.entries)+extra)
	for addr, e := range s.entries {
		out = append(out, Candidate{Addr: addr, Kind: e.kind})
	}
	return out
}

func sortCandidates(cs []Candidate) {
	slices.SortFunc(cs, func(a, b Candidate) int {
		if a.Kind != b.Kind {
			return int(a.Kind) - int(b.Kind)
		}
		return a.Addr.Compare(b.Addr)
	})
}

// Viewer is one viewer's view of a Set: what it adds are that viewer's
// reports (reflexive, at most MaxReportsPerViewer distinct addresses over
// all its sources), and its Snapshot is the Set's own candidates plus
// those reports. Another viewer's view never contains them.
//
// Offering a viewer its own reports back is safe: it learns nothing it
// did not say, it could probe any address without being told, and the
// camera never sends toward a candidate (it punches only toward addresses
// observed for that viewer or on the camera's own networks,
// docs/nat-traversal.md §5). Offering them to others is not: a paired
// viewer could aim every other viewer's probes at addresses of its choice
// and crowd out the camera's real candidates.
type Viewer struct {
	s      *Set
	key    string
	closed bool
}

// Viewer returns the view of viewer key (e.g. its key fingerprint; all
// connections of one viewer share one key and one cap). Close it when
// done; the reports stay until their sources withdraw them.
func (s *Set) Viewer(key string) *Viewer {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.viewerLocked(key).refs++
	return &Viewer{s: s, key: key}
}

func (s *Set) viewerLocked(key string) *viewerState {
	v, ok := s.viewers[key]
	if !ok {
		v = &viewerState{reports: make(map[netip.AddrPort]map[string]struct{}), changed: make(chan struct{})}
		s.viewers[key] = v
	}
	return v
}

// dropIdleLocked forgets a viewer with no reports and no open view.
func (s *Set) dropIdleLocked(key string) {
	if v, ok := s.viewers[key]; ok && v.refs == 0 && len(v.reports) == 0 {
		delete(s.viewers, key)
	}
}

// Add records that source (one of the viewer's connections) reported
// addr. The kind is always Reflexive: a viewer cannot vouch for the
// camera's interfaces. It fails once the viewer has MaxReportsPerViewer
// other addresses.
func (v *Viewer) Add(addr netip.AddrPort, _ Kind, source string) (bool, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if err := Usable(addr); err != nil {
		return false, err
	}
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	st := v.s.viewerLocked(v.key)
	srcs, ok := st.reports[addr]
	if !ok {
		if len(st.reports) >= MaxReportsPerViewer {
			v.s.dropIdleLocked(v.key)
			return false, fmt.Errorf("viewer's reports full (%d)", MaxReportsPerViewer)
		}
		srcs = make(map[string]struct{})
		st.reports[addr] = srcs
		if _, own := v.s.entries[addr]; !own {
			st.notify()
		}
	}
	srcs[source] = struct{}{}
	return !ok, nil
}

// Remove withdraws source's report of addr.
func (v *Viewer) Remove(addr netip.AddrPort, source string) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	v.removeLocked(addr, source)
	v.s.dropIdleLocked(v.key)
}

// RemoveSource withdraws everything source reported (its connection
// ended).
func (v *Viewer) RemoveSource(source string) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	if st, ok := v.s.viewers[v.key]; ok {
		for addr := range st.reports {
			v.removeLocked(addr, source)
		}
	}
	v.s.dropIdleLocked(v.key)
}

func (v *Viewer) removeLocked(addr netip.AddrPort, source string) {
	st, ok := v.s.viewers[v.key]
	if !ok {
		return
	}
	srcs, ok := st.reports[addr]
	if !ok {
		return
	}
	if _, ok := srcs[source]; !ok {
		return
	}
	delete(srcs, source)
	if len(srcs) == 0 {
		delete(st.reports, addr)
		if _, own := v.s.entries[addr]; !own {
			st.notify()
		}
	}
}

// Snapshot returns the Set's own candidates and this viewer's reports
// (an address both are is listed once, as the camera's), host first then
// by address, and a channel closed at the next change of either.
func (v *Viewer) Snapshot() ([]Candidate, <-chan struct{}) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	st := v.s.viewerLocked(v.key)
	out := v.s.ownLocked(len(st.reports))
	for addr := range st.reports {
		if _, own := v.s.entries[addr]; !own {
			out = append(out, Candidate{Addr: addr, Kind: Reflexive})
		}
	}
	sortCandidates(out)
	return out, st.changed
}

// Reports returns the addresses this viewer's reports hold now.
func (v *Viewer) Reports() []netip.AddrPort {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	var out []netip.AddrPort
	if st, ok := v.s.viewers[v.key]; ok {
		for addr := range st.reports {
			out = append(out, addr)
		}
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// Close releases the view. Reports stay until withdrawn by their source.
func (v *Viewer) Close() {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	if v.closed {
		return
	}
	v.closed = true
	if st, ok := v.s.viewers[v.key]; ok {
		st.refs--
	}
	v.s.dropIdleLocked(v.key)
}

package identity

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/camagent/camagent/internal/base/statefile"
)

// ViewersFile is the paired-viewer store's name in the camera's state dir.
const ViewersFile = "viewers.json"

// seenResolution is how stale LastSeen may get before MarkSeen rewrites
// the file: a write per connection would wear out the SD card.
const seenResolution = time.Hour

// minPrefixLen is the shortest fingerprint prefix Revoke accepts, so that a
// typo of one or two characters cannot revoke an arbitrary viewer.
const minPrefixLen = 4

// Errors from the viewer and camera stores.
var (
	ErrNotFound  = errors.New("identity: not found")
	ErrAmbiguous = errors.New("identity: ambiguous")
)

// Viewer is one paired viewer as the camera knows it.
type Viewer struct {
	Name        string     `json:"name"`
	Fingerprint string     `json:"fingerprint"`
	PairedAt    time.Time  `json:"paired_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	LastSeen    time.Time  `json:"last_seen,omitzero"`
}

// Revoked reports whether the viewer has been revoked.
func (v Viewer) Revoked() bool { return v.RevokedAt != nil }

type viewersDoc struct {
	Viewers []Viewer `json:"viewers"`
}

// ViewerStore is the camera's list of paired viewers, kept in viewers.json
// and shared between the agent and the CLI. Revoked viewers stay listed
// (with RevokedAt) so that the history is visible. Safe for concurrent use.
type ViewerStore struct {
	file *statefile.File[viewersDoc]

	mu  sync.Mutex
	now func() time.Time
}

// OpenViewerStore opens (or prepares to create) the store at path, usually
// filepath.Join(stateDir, ViewersFile).
func OpenViewerStore(path string) (*ViewerStore, error) {
	f, err := statefile.Open[viewersDoc](path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &ViewerStore{file: f, now: time.Now}, nil
}

// SetClock replaces the store's clock (tests).
func (s *ViewerStore) SetClock(now func() time.Time) {
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

func (s *ViewerStore) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now().UTC()
}

// Add pairs the viewer with fingerprint fp under name. Pairing a known
// fingerprint again (for example after revocation) reinstates it. If
// another key already uses name, a numeric suffix keeps names unique so
// that `viewers revoke NAME` stays unambiguous. Add returns the entry as
// stored.
func (s *ViewerStore) Add(name, fp string) (Viewer, error) {
	if err := CheckName(name); err != nil {
		return Viewer{}, err
	}
	fp, err := ParseFingerprint(fp)
	if err != nil {
		return Viewer{}, err
	}
	now := s.clock()
	var added Viewer
	err = s.file.Update(func(d *viewersDoc) error {
		d.Viewers = slices.DeleteFunc(d.Viewers, func(v Viewer) bool { return v.Fingerprint == fp })
		added = Viewer{Name: uniqueName(name, d.Viewers), Fingerprint: fp, PairedAt: now}
		d.Viewers = append(d.Viewers, added)
		return nil
	})
	if err != nil {
		return Viewer{}, fmt.Errorf("identity: add viewer: %w", err)
	}
	return added, nil
}

// uniqueName returns name, or name-2, name-3... if taken by another entry.
func uniqueName(name string, viewers []Viewer) string {
	taken := func(n string) bool {
		return slices.ContainsFunc(viewers, func(v Viewer) bool { return v.Name == n })
	}
	candidate := name
	for i := 2; taken(candidate); i++ {
		suffix := "-" + strconv.Itoa(i)
		candidate = truncate(name, MaxNameLen-len(suffix)) + suffix
	}
	return candidate
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Revoke revokes the active viewer whose name is query or whose
// fingerprint starts with query (at least 4 characters, separators and
// case ignored). It fails with ErrNotFound or, if several viewers match,
// ErrAmbiguous, and returns the revoked entry.
func (s *ViewerStore) Revoke(query string) (Viewer, error) {
	now := s.clock()
	var revoked Viewer
	err := s.file.Update(func(d *viewersDoc) error {
		i, err := matchViewer(d.Viewers, query)
		if err != nil {
			return err
		}
		d.Viewers[i].RevokedAt = &now
		revoked = d.Viewers[i]
		return nil
	})
	if err != nil {
		return Viewer{}, fmt.Errorf("revoke %q: %w", query, err)
	}
	return revoked, nil
}

// matchViewer finds the one active viewer that query names.
func matchViewer(viewers []Viewer, query string) (int, error) {
	prefix := strings.ToLower(stripSeparators(query))
	var hits []int
	for i, v := range viewers {
		if v.Revoked() {
			continue
		}
		byName := v.Name == query
		byPrefix := len(prefix) >= minPrefixLen && strings.HasPrefix(v.Fingerprint, prefix)
		if byName || byPrefix {
			hits = append(hits, i)
		}
	}
	switch len(hits) {
	case 0:
		return -1, ErrNotFound
	case 1:
		return hits[0], nil
	}
	names := make([]string, len(hits))
	for j, i := range hits {
		names[j] = fmt.Sprintf("%s (%s)", viewers[i].Name, ShortFingerprint(viewers[i].Fingerprint))
	}
	return -1, fmt.Errorf("%w: matches %s", ErrAmbiguous, strings.Join(names, ", "))
}

// List returns all viewers, revoked ones included, in pairing order.
func (s *ViewerStore) List() ([]Viewer, error) {
	var out []Viewer
	err := s.file.View(func(d viewersDoc) error {
		out = cloneViewers(d.Viewers)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("identity: list viewers: %w", err)
	}
	return out, nil
}

// Allowed reports whether fp belongs to a paired, unrevoked viewer. It
// rereads viewers.json if another process changed it, so a revocation by
// the CLI takes effect at the next handshake. Any error to read the store
// counts as not allowed: the camera fails closed.
func (s *ViewerStore) Allowed(fp string) (Viewer, bool) {
	var found Viewer
	var ok bool
	err := s.file.View(func(d viewersDoc) error {
		for _, v := range d.Viewers {
			if v.Fingerprint == fp && !v.Revoked() {
				found, ok = cloneViewer(v), true
			}
		}
		return nil
	})
	if err != nil || fp == "" {
		return Viewer{}, false
	}
	return found, ok
}

// MarkSeen records that the viewer fp connected. To spare the flash it
// writes only when the stored LastSeen is more than an hour old.
func (s *ViewerStore) MarkSeen(fp string) error {
	now := s.clock()
	return s.file.Update(func(d *viewersDoc) error {
		for i, v := range d.Viewers {
			if v.Fingerprint == fp && !v.Revoked() && now.Sub(v.LastSeen) >= seenResolution {
				d.Viewers[i].LastSeen = now
				return nil
			}
		}
		return statefile.ErrNoChange
	})
}

func cloneViewers(vs []Viewer) []Viewer {
	out := make([]Viewer, len(vs))
	for i, v := range vs {
		out[i] = cloneViewer(v)
	}
	return out
}

func cloneViewer(v Viewer) Viewer {
	if v.RevokedAt != nil {
		t := *v.RevokedAt
		v.RevokedAt = &t
	}
	return v
}

// ViewersPath is the conventional location of the store in stateDir.
func ViewersPath(stateDir string) string { return filepath.Join(stateDir, ViewersFile) }

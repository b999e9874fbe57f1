package pairing

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/camagent/camagent/internal/base/statefile"
	"github.com/camagent/camagent/internal/feature/identity"
)

// CodesFile is the one-time code store's name in the camera's state dir.
const CodesFile = "codes.json"

// Limits on one-time codes.
const (
	// DefaultCodeTTL is how long a code stays valid unless told otherwise.
	DefaultCodeTTL = 10 * time.Minute
	// MaxCodeTTL caps requested lifetimes: a code is a bearer secret.
	MaxCodeTTL = 24 * time.Hour
	// MaxFailuresPerCode wrong attempts burn every live code. A wrong
	// guess cannot tell which code it was aimed at, so it counts against
	// all of them; with 60-bit codes five guesses are hopeless.
	MaxFailuresPerCode = 5
	// MaxFailuresPerWindow wrong attempts within FailureWindow, across all
	// codes, close pairing until the window has passed.
	MaxFailuresPerWindow = 20
	FailureWindow        = 10 * time.Minute
	// MaxLiveCodes bounds codes.json.
	MaxLiveCodes = 16
	// expiredRetention keeps expired or burned codes long enough to tell
	// the owner why a code failed, then prunes them.
	expiredRetention = time.Hour
)

// Errors from redeeming a code. They are also what Join reports when the
// camera refuses.
var (
	ErrCodeInvalid  = errors.New("pairing: wrong or already used code")
	ErrCodeExpired  = errors.New("pairing: code expired")
	ErrCodeBurned   = errors.New("pairing: code disabled after too many wrong attempts; make a new one")
	ErrRateLimited  = errors.New("pairing: too many wrong attempts; try again later")
	ErrTooManyCodes = errors.New("pairing: too many unexpired codes")
)

// IssuedCode is a freshly created code. Code is shown once and never
// stored in clear.
type IssuedCode struct {
	Code    string
	ID      string // non-secret handle for listings
	Viewer  string // intended viewer name, "" to take the viewer's own
	Expires time.Time
}

// PendingCode describes a stored code without its secret.
type PendingCode struct {
	ID       string
	Viewer   string
	Created  time.Time
	Expires  time.Time
	Failures int
	Burned   bool
}

// Grant is what a successful redemption yields.
type Grant struct {
	ID     string
	Viewer string // intended viewer name from the code, may be ""
}

type storedCode struct {
	ID       string    `json:"id"`
	Salt     []byte    `json:"salt"`
	Hash     []byte    `json:"hash"`
	Viewer   string    `json:"viewer,omitempty"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Failures int       `json:"failures,omitempty"`
	Burned   bool      `json:"burned,omitempty"`
}

// live reports whether the code can still be redeemed. A code created in
// the future means the clock went backwards (a board without RTC booting
// before NTP): its expiry cannot be trusted, so it is treated as expired.
func (c storedCode) live(now time.Time) bool {
	return !c.Burned && now.Before(c.Expires) && !now.Before(c.Created.Add(-clockSkew))
}

// clockSkew tolerates small differences between the CLI's and the
// agent's reading of the clock.
const clockSkew = time.Minute

type codesDoc struct {
	Codes []storedCode `json:"codes"`
	// Failures are the times of recent wrong attempts, for the global limit.
	Failures []time.Time `json:"failures,omitempty"`
}

// CodeStore keeps one-time pairing codes in codes.json, shared by
// `camagent pair`, which creates them, and the agent, which redeems them.
// Only salted hashes are stored. Safe for concurrent use.
type CodeStore struct {
	file *statefile.File[codesDoc]

	mu  sync.Mutex
	now func() time.Time
}

// OpenCodeStore opens (or prepares to create) the store at path, usually
// CodesPath(stateDir).
func OpenCodeStore(path string) (*CodeStore, error) {
	f, err := statefile.Open[codesDoc](path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pairing: %w", err)
	}
	return &CodeStore{file: f, now: time.Now}, nil
}

// CodesPath is the conventional location of the store in stateDir.
func CodesPath(stateDir string) string { return filepath.Join(stateDir, CodesFile) }

// SetClock replaces the store's clock (tests).
func (s *CodeStore) SetClock(now func() time.Time) {
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

func (s *CodeStore) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now().UTC()
}

// Create makes a code valid for ttl (0 means DefaultCodeTTL). viewer, if
// not empty, is the name the paired viewer will get whatever it asks for.
func (s *CodeStore) Create(viewer string, ttl time.Duration) (IssuedCode, error) {
	if viewer != "" {
		if err := identity.CheckName(viewer); err != nil {
			return IssuedCode{}, err
		}
	}
	if ttl <= 0 {
		ttl = DefaultCodeTTL
	}
	ttl = min(ttl, MaxCodeTTL)
	code, err := GenerateCode()
	if err != nil {
		return IssuedCode{}, fmt.Errorf("pairing: %w", err)
	}
	stored, err := newStoredCode(code, viewer, s.clock(), ttl)
	if err != nil {
		return IssuedCode{}, err
	}
	err = s.file.Update(func(d *codesDoc) error {
		prune(d, stored.Created)
		if countLive(d.Codes, stored.Created) >= MaxLiveCodes {
			return ErrTooManyCodes
		}
		d.Codes = append(d.Codes, stored)
		return nil
	})
	if err != nil {
		return IssuedCode{}, fmt.Errorf("pairing: create code: %w", err)
	}
	return IssuedCode{Code: code, ID: stored.ID, Viewer: viewer, Expires: stored.Expires}, nil
}

func newStoredCode(code, viewer string, now time.Time, ttl time.Duration) (storedCode, error) {
	var salt, id [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return storedCode{}, err
	}
	if _, err := rand.Read(id[:4]); err != nil {
		return storedCode{}, err
	}
	return storedCode{
		ID:      hex.EncodeToString(id[:4]),
		Salt:    salt[:],
		Hash:    hashCode(salt[:], code),
		Viewer:  viewer,
		Created: now,
		Expires: now.Add(ttl),
	}, nil
}

// Redeem checks code and, if it is live, consumes it. A wrong code counts
// as a failure against every live code (see MaxFailuresPerCode) and
// against the global limit.
func (s *CodeStore) Redeem(code string) (Grant, error) {
	normalized, err := NormalizeCode(code)
	if err != nil {
		// Cannot match anything; not worth a flash write.
		return Grant{}, ErrCodeInvalid
	}
	now := s.clock()
	var grant Grant
	var verdict error
	err = s.file.Update(func(d *codesDoc) error {
		pruned := prune(d, now)
		var changed bool
		grant, verdict, changed = redeem(d, normalized, now)
		if !pruned && !changed {
			// Spare the flash: attempts that change nothing (rate
			// limited, no live code) must not each cost a write.
			return statefile.ErrNoChange
		}
		return nil
	})
	if err != nil {
		return Grant{}, fmt.Errorf("pairing: redeem: %w", err)
	}
	return grant, verdict
}

// redeem applies one attempt to the document and reports whether it
// changed it.
func redeem(d *codesDoc, normalized string, now time.Time) (g Grant, verdict error, changed bool) {
	if len(d.Failures) >= MaxFailuresPerWindow {
		return Grant{}, ErrRateLimited, false
	}
	i := findCode(d.Codes, normalized)
	switch {
	case i >= 0 && d.Codes[i].live(now):
		c := d.Codes[i]
		d.Codes = slices.Delete(d.Codes, i, i+1)
		return Grant{ID: c.ID, Viewer: c.Viewer}, nil, true
	case i >= 0 && d.Codes[i].Burned:
		return Grant{}, ErrCodeBurned, false
	case i >= 0:
		return Grant{}, ErrCodeExpired, false
	case countLive(d.Codes, now) == 0:
		// Nothing to guess at, so nothing to count.
		return Grant{}, ErrCodeInvalid, false
	}
	recordFailure(d, now)
	return Grant{}, ErrCodeInvalid, true
}

// findCode compares against every stored code, without stopping at a hit,
// and returns the index of the match or -1.
func findCode(codes []storedCode, normalized string) int {
	found := -1
	for i, c := range codes {
		if codeMatches(c.Salt, c.Hash, normalized) {
			found = i
		}
	}
	return found
}

func recordFailure(d *codesDoc, now time.Time) {
	d.Failures = append(d.Failures, now)
	for i := range d.Codes {
		if !d.Codes[i].live(now) {
			continue
		}
		d.Codes[i].Failures++
		if d.Codes[i].Failures >= MaxFailuresPerCode {
			d.Codes[i].Burned = true
		}
	}
}

// prune drops codes well past expiry and failures outside the window, and
// reports whether it dropped anything.
func prune(d *codesDoc, now time.Time) bool {
	codes, failures := len(d.Codes), len(d.Failures)
	d.Codes = slices.DeleteFunc(d.Codes, func(c storedCode) bool {
		return !now.Before(c.Expires.Add(expiredRetention))
	})
	// Failures stamped in the future come from before a backwards clock
	// step; they are dropped rather than left to block pairing.
	d.Failures = slices.DeleteFunc(d.Failures, func(t time.Time) bool {
		return !now.Before(t.Add(FailureWindow)) || t.After(now.Add(clockSkew))
	})
	return len(d.Codes) != codes || len(d.Failures) != failures
}

func countLive(codes []storedCode, now time.Time) int {
	n := 0
	for _, c := range codes {
		if c.live(now) {
			n++
		}
	}
	return n
}

// Pending lists the stored codes that are not yet pruned, without
// secrets, for `camagent pair --list`.
func (s *CodeStore) Pending() ([]PendingCode, error) {
	now := s.clock()
	var out []PendingCode
	err := s.file.View(func(d codesDoc) error {
		for _, c := range d.Codes {
			if now.Before(c.Expires.Add(expiredRetention)) {
				out = append(out, PendingCode{ID: c.ID, Viewer: c.Viewer, Created: c.Created,
					Expires: c.Expires, Failures: c.Failures, Burned: c.Burned})
			}
		}
		return nil
	})
	return out, err
}

// Cancel deletes the code with the given ID.
func (s *CodeStore) Cancel(id string) error {
	return s.file.Update(func(d *codesDoc) error {
		n := len(d.Codes)
		d.Codes = slices.DeleteFunc(d.Codes, func(c storedCode) bool { return c.ID == id })
		if len(d.Codes) == n {
			return fmt.Errorf("pairing: code %q: %w", id, identity.ErrNotFound)
		}
		return nil
	})
}

package pairing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openCodes(t *testing.T, path string, c *clock) *CodeStore {
	t.Helper()
	s, err := OpenCodeStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		s.SetClock(c.Now)
	}
	return s
}

func mustCreate(t *testing.T, s *CodeStore, viewer string) IssuedCode {
	t.Helper()
	c, err := s.Create(viewer, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCodeRedeemOnce(t *testing.T) {
	s := openCodes(t, filepath.Join(t.TempDir(), CodesFile), newClock())
	issued := mustCreate(t, s, "kitchen tablet")
	// Typed sloppily: lower case, no dashes.
	g, err := s.Redeem(strings.ToLower(strings.ReplaceAll(issued.Code, "-", "")))
	if err != nil {
		t.Fatal(err)
	}
	if g.Viewer != "kitchen tablet" || g.ID != issued.ID {
		t.Fatalf("grant %+v", g)
	}
	if _, err := s.Redeem(issued.Code); !errors.Is(err, ErrCodeInvalid) {
		t.Fatalf("second redeem: %v, want ErrCodeInvalid", err)
	}
}

func TestCodeExpiry(t *testing.T) {
	clk := newClock()
	s := openCodes(t, filepath.Join(t.TempDir(), CodesFile), clk)
	issued := mustCreate(t, s, "")
	if !issued.Expires.Equal(clk.Now().Add(DefaultCodeTTL)) {
		t.Fatalf("expires %v", issued.Expires)
	}
	clk.Advance(DefaultCodeTTL)
	if _, err := s.Redeem(issued.Code); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("redeem at expiry: %v, want ErrCodeExpired", err)
	}
	// Long after expiry the code is pruned and just unknown.
	clk.Advance(2 * expiredRetention)
	if _, err := s.Redeem(issued.Code); !errors.Is(err, ErrCodeInvalid) {
		t.Fatalf("redeem after pruning: %v", err)
	}
	if p, _ := s.Pending(); len(p) != 0 {
		t.Fatalf("pending after pruning: %+v", p)
	}
}

func TestCodeClockStepBackwards(t *testing.T) {
	clk := newClock()
	s := openCodes(t, filepath.Join(t.TempDir(), CodesFile), clk)
	issued := mustCreate(t, s, "")
	clk.Advance(-24 * time.Hour) // rebooted without RTC, before NTP
	if _, err := s.Redeem(issued.Code); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("code from the future: %v, want ErrCodeExpired", err)
	}
}

func TestCodeBruteForceBurns(t *testing.T) {
	s := openCodes(t, filepath.Join(t.TempDir(), CodesFile), newClock())
	a := mustCreate(t, s, "")
	b := mustCreate(t, s, "")
	wrong := wrongCode(t, a.Code, b.Code)
	for i := range MaxFailuresPerCode {
		if _, err := s.Redeem(wrong); !errors.Is(err, ErrCodeInvalid) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// Both live codes took every failure, so both are burned.
	for _, c := range []IssuedCode{a, b} {
		if _, err := s.Redeem(c.Code); !errors.Is(err, ErrCodeBurned) {
			t.Fatalf("right code after brute force: %v, want ErrCodeBurned", err)
		}
	}
	pending, _ := s.Pending()
	for _, p := range pending {
		if !p.Burned || p.Failures != MaxFailuresPerCode {
			t.Fatalf("pending %+v", p)
		}
	}
}

func TestCodeFewFailuresTolerated(t *testing.T) {
	s := openCodes(t, filepath.Join(t.TempDir(), CodesFile), newClock())
	c := mustCreate(t, s, "")
	wrong := wrongCode(t, c.Code)
	for range MaxFailuresPerCode - 1 {
		s.Redeem(wrong)
	}
	if _, err := s.Redeem(c.Code); err != nil {
		t.Fatalf("typo-prone owner locked out early: %v", err)
	}
}

func TestCodeGlobalRateLimit(t *testing.T) {
	clk := newClock()
	s := openCodes(t, filepath.Join(t.TempDir(), CodesFile), clk)
	// Spread failures over fresh codes so none burns before the global
	// limit is reached.
	for failures := 0; failures < MaxFailuresPerWindow; {
		c := mustCreate(t, s, "")
		for range MaxFailuresPerCode - 1 {
			s.Redeem(wrongCode(t, c.Code))
			failures++
		}
		if _, err := s.Redeem(c.Code); err != nil && failures < MaxFailuresPerWindow {
			t.Fatal(err)
		}
	}
	c := mustCreate(t, s, "")
	if _, err := s.Redeem(c.Code); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("right code while rate limited: %v", err)
	}
	clk.Advance(FailureWindow)
	c = mustCreate(t, s, "")
	if _, err := s.Redeem(c.Code); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// An attacker hammering a camera with no live code must not cost a flash
// write per attempt.
func TestCodeIdleAttemptsDoNotWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), CodesFile)
	s := openCodes(t, path, newClock())
	c := mustCreate(t, s, "")
	if _, err := s.Redeem(c.Code); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := s.Redeem("0000-0000-0000"); !errors.Is(err, ErrCodeInvalid) {
			t.Fatal(err)
		}
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Fatal("failed attempts without a live code rewrote codes.json")
	}
}

func TestCodeStoredHashedOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), CodesFile)
	c := mustCreate(t, openCodes(t, path, nil), "")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range []string{c.Code, strings.ReplaceAll(c.Code, "-", "")} {
		if strings.Contains(string(raw), form) {
			t.Fatalf("codes.json contains the code in clear: %s", raw)
		}
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("codes.json mode %o", info.Mode().Perm())
	}
}

func TestCodeCreateLimits(t *testing.T) {
	s := openCodes(t, filepath.Join(t.TempDir(), CodesFile), newClock())
	for range MaxLiveCodes {
		mustCreate(t, s, "")
	}
	if _, err := s.Create("", 0); !errors.Is(err, ErrTooManyCodes) {
		t.Fatalf("code %d: %v", MaxLiveCodes+1, err)
	}
	if _, err := s.Create("bad\x07name", 0); err == nil {
		t.Fatal("accepted a name with a control character")
	}
	s2 := openCodes(t, filepath.Join(t.TempDir(), CodesFile), newClock())
	c, err := s2.Create("", 1000*time.Hour)
	if err != nil || c.Expires.Sub(newClock().Now()) != MaxCodeTTL {
		t.Fatalf("ttl not capped: %+v, %v", c, err)
	}
}

func TestCodeCancel(t *testing.T) {
	s := openCodes(t, filepath.Join(t.TempDir(), CodesFile), nil)
	c := mustCreate(t, s, "")
	if err := s.Cancel(c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Redeem(c.Code); !errors.Is(err, ErrCodeInvalid) {
		t.Fatalf("cancelled code: %v", err)
	}
	if err := s.Cancel(c.ID); err == nil {
		t.Fatal("second cancel succeeded")
	}
}

// `camagent pair` (creating) and the agent (redeeming) are separate
// processes on one codes.json; stores opened separately stand in for them.
// No code may be lost to a read-modify-write race.
func TestCodeConcurrentCLIAndAgent(t *testing.T) {
	path := filepath.Join(t.TempDir(), CodesFile)
	cli1, cli2 := openCodes(t, path, nil), openCodes(t, path, nil)
	agent := openCodes(t, path, nil)
	const perCLI = MaxLiveCodes / 2

	created := make(chan string, 2*perCLI)
	var wg sync.WaitGroup
	for _, cli := range []*CodeStore{cli1, cli2} {
		wg.Go(func() {
			for range perCLI {
				c, err := cli.Create("", 0)
				if err != nil {
					t.Error(err)
					return
				}
				created <- c.Code
			}
		})
	}
	go func() { wg.Wait(); close(created) }()

	redeemed := 0
	for code := range created {
		if _, err := agent.Redeem(code); err != nil {
			t.Fatalf("code %s lost: %v", code, err)
		}
		redeemed++
	}
	if redeemed != 2*perCLI {
		t.Fatalf("redeemed %d codes, want %d", redeemed, 2*perCLI)
	}
}

// wrongCode returns a well-formed code different from all of codes.
func wrongCode(t *testing.T, codes ...string) string {
	t.Helper()
	for {
		c, err := GenerateCode()
		if err != nil {
			t.Fatal(err)
		}
		clash := false
		for _, o := range codes {
			clash = clash || o == c
		}
		if !clash {
			return c
		}
	}
}

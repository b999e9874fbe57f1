package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeFP returns a distinct valid fingerprint whose first characters are
// prefix (letters a-z, digits 2-7).
func fakeFP(t *testing.T, prefix string) string {
	t.Helper()
	s := prefix + sampleFP[len(prefix):]
	fp, err := ParseFingerprint(s)
	if err != nil {
		t.Fatalf("fakeFP(%q): %v", prefix, err)
	}
	return fp
}

func openViewers(t *testing.T, path string) *ViewerStore {
	t.Helper()
	s, err := OpenViewerStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestViewerStoreAddAllowed(t *testing.T) {
	s := openViewers(t, filepath.Join(t.TempDir(), ViewersFile))
	fp := fakeFP(t, "aaaa")
	v, err := s.Add("phone", fp)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "phone" || v.Fingerprint != fp || v.PairedAt.IsZero() {
		t.Fatalf("Add returned %+v", v)
	}
	if got, ok := s.Allowed(fp); !ok || got.Name != "phone" {
		t.Fatalf("Allowed(paired) = %+v, %v", got, ok)
	}
	if _, ok := s.Allowed(fakeFP(t, "bbbb")); ok {
		t.Fatal("unknown fingerprint allowed")
	}
	if _, ok := s.Allowed(""); ok {
		t.Fatal("empty fingerprint allowed")
	}
}

func TestViewerStoreAddRejects(t *testing.T) {
	s := openViewers(t, filepath.Join(t.TempDir(), ViewersFile))
	tests := []struct{ name, viewer, fp string }{
		{"empty name", "", sampleFP},
		{"escape in name", "a\x1b[2Jb", sampleFP},
		{"bidi override", "a\u202eb", sampleFP},
		{"bad fingerprint", "phone", "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Add(tc.viewer, tc.fp); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestViewerStoreUniqueNames(t *testing.T) {
	s := openViewers(t, filepath.Join(t.TempDir(), ViewersFile))
	names := []string{}
	for _, p := range []string{"aaaa", "bbbb", "cccc"} {
		v, err := s.Add("phone", fakeFP(t, p))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, v.Name)
	}
	if fmt.Sprint(names) != "[phone phone-2 phone-3]" {
		t.Fatalf("names %v", names)
	}
	// Re-pairing a known key replaces its entry instead of duplicating it.
	v, err := s.Add("tablet", fakeFP(t, "aaaa"))
	if err != nil {
		t.Fatal(err)
	}
	list, _ := s.List()
	if len(list) != 3 || v.Name != "tablet" {
		t.Fatalf("after re-pair: %+v", list)
	}
}

func TestViewerStoreRevoke(t *testing.T) {
	tests := []struct {
		query   string
		wantErr error
		want    string
	}{
		{"phone", nil, "phone"},
		{"ABCD", nil, "laptop"},
		{"abcd-ef", nil, "laptop"},
		{"ab", ErrNotFound, ""}, // too short for a prefix
		{"zzzz", ErrNotFound, ""},
		{"aa", ErrNotFound, ""},
		{"aaaa", ErrAmbiguous, ""}, // tv and tv2 share the prefix
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			s := openViewers(t, filepath.Join(t.TempDir(), ViewersFile))
			mustAdd(t, s, "phone", fakeFP(t, "pppp"))
			mustAdd(t, s, "laptop", fakeFP(t, "abcdef"))
			mustAdd(t, s, "tv", fakeFP(t, "aaaab"))
			mustAdd(t, s, "tv2", fakeFP(t, "aaaac"))
			v, err := s.Revoke(tc.query)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Revoke(%q) = %+v, %v; want %v", tc.query, v, err, tc.wantErr)
				}
				return
			}
			if err != nil || v.Name != tc.want || !v.Revoked() {
				t.Fatalf("Revoke(%q) = %+v, %v", tc.query, v, err)
			}
			if _, ok := s.Allowed(v.Fingerprint); ok {
				t.Fatal("revoked viewer still allowed")
			}
			// A revoked viewer no longer matches: revoking twice is NotFound.
			if _, err := s.Revoke(tc.query); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second revoke: %v", err)
			}
		})
	}
}

func mustAdd(t *testing.T, s *ViewerStore, name, fp string) Viewer {
	t.Helper()
	v, err := s.Add(name, fp)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The CLI and the agent are separate processes; here two stores on one
// file stand in for them.
func TestViewerStoreSeesOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), ViewersFile)
	agent := openViewers(t, path)
	cli := openViewers(t, path)
	fp := fakeFP(t, "aaaa")
	mustAdd(t, agent, "phone", fp)
	if _, ok := agent.Allowed(fp); !ok {
		t.Fatal("not allowed after add")
	}
	if _, err := cli.Revoke("phone"); err != nil {
		t.Fatal(err)
	}
	if _, ok := agent.Allowed(fp); ok {
		t.Fatal("agent did not see the CLI's revocation")
	}
}

func TestViewerStoreConcurrentAdds(t *testing.T) {
	path := filepath.Join(t.TempDir(), ViewersFile)
	stores := []*ViewerStore{openViewers(t, path), openViewers(t, path)}
	const perStore = 10
	var wg sync.WaitGroup
	for si, s := range stores {
		wg.Go(func() {
			for i := range perStore {
				fp := fakeFP(t, fmt.Sprintf("%c%c", 'a'+si, 'a'+i))
				if _, err := s.Add(fmt.Sprintf("v%d-%d", si, i), fp); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	list, err := openViewers(t, path).List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2*perStore {
		t.Fatalf("%d viewers after concurrent adds, want %d", len(list), 2*perStore)
	}
}

func TestViewerStoreFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), ViewersFile)
	mustAdd(t, openViewers(t, path), "phone", sampleFP)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", info.Mode().Perm())
	}
}

func TestViewerStoreCorruptFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), ViewersFile)
	s := openViewers(t, path)
	mustAdd(t, s, "phone", sampleFP)
	if err := os.WriteFile(path, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Allowed(sampleFP); ok {
		t.Fatal("corrupt store allowed a viewer")
	}
	if _, err := s.Add("x", fakeFP(t, "bbbb")); err == nil {
		t.Fatal("Add over a corrupt store succeeded and would have erased it")
	}
}

func TestMarkSeenThrottles(t *testing.T) {
	path := filepath.Join(t.TempDir(), ViewersFile)
	s := openViewers(t, path)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	mustAdd(t, s, "phone", sampleFP)
	if err := s.MarkSeen(sampleFP); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	now = now.Add(time.Minute)
	if err := s.MarkSeen(sampleFP); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Fatal("MarkSeen rewrote the file within the hour")
	}
	v, _ := s.Allowed(sampleFP)
	if !v.LastSeen.Equal(now.Add(-time.Minute)) {
		t.Fatalf("LastSeen %v", v.LastSeen)
	}
}

package statefile

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/camagent/camagent/internal/base/testtier"
)

type counter struct {
	N int `json:"n"`
}

func open(t *testing.T, path string) *File[counter] {
	t.Helper()
	f, err := Open[counter](path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func read(t *testing.T, f *File[counter]) int {
	t.Helper()
	var n int
	if err := f.View(func(c counter) error { n = c.N; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func increment(c *counter) error { c.N++; return nil }

func TestUpdateAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	a, b := open(t, path), open(t, path)
	if read(t, a) != 0 {
		t.Fatal("missing file should read as zero")
	}
	if err := a.Update(increment); err != nil {
		t.Fatal(err)
	}
	if got := read(t, b); got != 1 {
		t.Fatalf("other instance reads %d, want 1", got)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", info.Mode().Perm())
	}
}

func TestUpdateWithoutWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	f := open(t, path)
	if err := f.Update(increment); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	boom := errors.New("boom")
	tests := []struct {
		fn   func(*counter) error
		want error
	}{
		{func(c *counter) error { c.N = 99; return boom }, boom},
		{func(c *counter) error { c.N = 99; return ErrNoChange }, nil},
	}
	for _, tc := range tests {
		if err := f.Update(tc.fn); !errors.Is(err, tc.want) {
			t.Fatalf("Update = %v, want %v", err, tc.want)
		}
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) || read(t, f) != 1 {
		t.Fatal("an aborted Update changed the file or the cache")
	}
}

func TestCorruptAndOversized(t *testing.T) {
	dir := t.TempDir()
	tests := map[string][]byte{
		"corrupt":   []byte("{"),
		"oversized": make([]byte, MaxSize+1),
	}
	for name, content := range tests {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open[counter](path, 0o600); err == nil {
			t.Errorf("%s file opened without error", name)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := Open[counter](empty, 0o600); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestConcurrentInstancesLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	const instances, each = 3, 20
	var wg sync.WaitGroup
	for range instances {
		f := open(t, path)
		wg.Go(func() {
			for range each {
				if err := f.Update(increment); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := read(t, open(t, path)); got != instances*each {
		t.Fatalf("counter %d, want %d", got, instances*each)
	}
}

// The real sharing is between processes (agent and CLI), where only the
// flock serialises writers. Children are this test binary re-executed.
func TestConcurrentProcessesLoseNothing(t *testing.T) {
	if path := os.Getenv("STATEFILE_CHILD_PATH"); path != "" {
		n, _ := strconv.Atoi(os.Getenv("STATEFILE_CHILD_N"))
		f := open(t, path)
		for range n {
			if err := f.Update(increment); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	testtier.Slow(t, "re-executes the test binary as concurrent writers")
	path := filepath.Join(t.TempDir(), "c.json")
	const procs, each = 2, 25
	var wg sync.WaitGroup
	for range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentProcessesLoseNothing$")
		cmd.Env = append(os.Environ(), "STATEFILE_CHILD_PATH="+path, fmt.Sprintf("STATEFILE_CHILD_N=%d", each))
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("child: %v\n%s", err, out)
			}
		})
	}
	wg.Wait()
	if got := read(t, open(t, path)); got != procs*each {
		t.Fatalf("counter %d after %d processes x %d, want %d", got, procs, each, procs*each)
	}
}

// Package attack is camagent's attack suite (issue 11, `make attack-test`):
// every attack on the relay, the agent and the unit that was found in review
// runs here against the real processes (bin/camagent relay, bin/camagent
// agent) on loopback or in network namespaces, and must be refused. Each
// attack is one subtest that ends with report(t, refused, evidence); the
// suite writes every result to out/attacks.json (name, refused, evidence)
// and fails unless all were refused.
//
// One file per area: relay_test.go (the relay as an open proxy, limits,
// RFC conformance), locator_test.go (locators, enumeration, key reveal,
// per-viewer limits, camagent-rec/1), unit_test.go (the systemd unit, state
// files, the token). Shared process helpers live in procs_test.go.
package attack

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

var outPath = flag.String("attacks.out", "", "where to write the results (default: out/attacks.json at the repository root)")

// Result is one attack's entry in out/attacks.json.
type Result struct {
	Name     string `json:"name"`
	Refused  bool   `json:"refused"`
	Evidence string `json:"evidence"`
}

var (
	resultsMu sync.Mutex
	results   []Result
)

// report records the outcome of the attack run by t (its full subtest name)
// and fails t unless the attack was refused. evidence says what was
// observed: the status, error or counter that shows the refusal, or what
// got through.
func report(t *testing.T, refused bool, evidence string, args ...any) {
	t.Helper()
	ev := fmt.Sprintf(evidence, args...)
	resultsMu.Lock()
	results = append(results, Result{Name: t.Name(), Refused: refused, Evidence: ev})
	resultsMu.Unlock()
	if !refused {
		t.Errorf("attack succeeded: %s", ev)
	} else {
		t.Logf("refused: %s", ev)
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if err := writeResults(); err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		if code == 0 {
			code = 1
		}
	}
	cleanupProcs()
	os.Exit(code)
}

func writeResults() error {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return nil // e.g. go test -short, or -run matching nothing here
	}
	sort.Slice(results, func(i, j int) bool { return results[i].Name < results[j].Name })
	path := *outPath
	if path == "" {
		path = filepath.Join(repoRoot(), "out", "attacks.json")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	refused := 0
	for _, r := range results {
		if r.Refused {
			refused++
		}
	}
	fmt.Printf("attacks: %d refused, %d got through (%s)\n", refused, len(results)-refused, path)
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// repoRoot is two levels up from this package (test/attack).
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	return filepath.Dir(filepath.Dir(wd))
}

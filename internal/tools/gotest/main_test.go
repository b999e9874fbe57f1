package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/camagent/camagent/internal/base/flakytest"
	"github.com/camagent/camagent/internal/base/testtier"
)

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"-record", "x/f.txt", "-reruns=1", "-count=1", "-v", "-timeout", "5m", "--", "./a/...", "./b"})
	if err != nil {
		t.Fatal(err)
	}
	if o.record != "x/f.txt" || o.reruns != 1 || !o.verbose ||
		!slices.Equal(o.flags, []string{"-count=1", "-v", "-timeout", "5m"}) || !slices.Equal(o.pkgs, []string{"./a/...", "./b"}) {
		t.Fatalf("parsed %+v", o)
	}
	o, err = parseArgs([]string{"-short", "--", "./..."})
	if err != nil || o.record != filepath.Join("out", "flaky.txt") || o.reruns != 2 || o.verbose {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	for _, bad := range [][]string{nil, {"./..."}, {"-short", "--"}, {"-reruns", "x", "--", "./..."}, {"-record"}} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// events builds a go test -json stream.
func events(t *testing.T, evs ...event) string {
	var b strings.Builder
	for _, e := range evs {
		j, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func out(pkg, test, line string) event {
	return event{Action: "output", Package: pkg, Test: test, Output: line}
}

func TestFailuresSortsMarkedAndUnmarked(t *testing.T) {
	const p = "example.com/p"
	mark := "    x_test.go:9: " + flakytest.Sentinel + "times out; issue 10\n"
	in := events(t,
		out(p, "TestA", "=== RUN   TestA\n"), out(p, "TestA", mark),
		out(p, "TestA/sub", "    x_test.go:12: timeout\n"),
		event{Action: "fail", Package: p, Test: "TestA/sub"}, event{Action: "fail", Package: p, Test: "TestA"},
		out(p, "TestB", "    y_test.go:3: wrong answer\n"), event{Action: "fail", Package: p, Test: "TestB"},
		out(p, "TestC", mark), event{Action: "pass", Package: p, Test: "TestC"},
		out(p, "TestD", "=== RUN   TestD\n"), out(p, "TestD", "    z_test.go:5: needs a camera\n"),
		out(p, "TestD", "--- SKIP: TestD (0.00s)\n"), event{Action: "skip", Package: p, Test: "TestD"},
		out(p, "", "FAIL\n"), event{Action: "fail", Package: p},
		event{Action: "fail", Package: "example.com/q", FailedBuild: "example.com/q"},
		event{Action: "pass", Package: "example.com/r"},
	) + "not json\n"
	var shown bytes.Buffer
	r := newResults(&shown, false)
	if err := r.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	marked, unmarked, broken := r.failures()
	want := []failure{{pkg: p, test: "TestA/sub", reason: "times out; issue 10", detail: "x_test.go:12: timeout"}}
	if !slices.Equal(marked, want) {
		t.Errorf("marked %+v, want %+v", marked, want)
	}
	want = []failure{{pkg: p, test: "TestB", detail: "y_test.go:3: wrong answer"}}
	if !slices.Equal(unmarked, want) {
		t.Errorf("unmarked %+v, want %+v", unmarked, want)
	}
	if !slices.Equal(broken, []string{"example.com/q"}) {
		t.Errorf("broken %q", broken)
	}
	if r.counts["pass"] != 1 || r.counts["skip"] != 1 || r.counts["fail"] != 3 {
		t.Errorf("counts %v", r.counts)
	}
	// Failed tests' output, why a test was skipped and package lines are
	// shown, passing tests' output not.
	for _, w := range []string{"x_test.go:12: timeout", "y_test.go:3: wrong answer", "    z_test.go:5: needs a camera\n--- SKIP: TestD (0.00s)\nFAIL\n", "not json\n"} {
		if !strings.Contains(shown.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, shown.String())
		}
	}
	if strings.Count(shown.String(), flakytest.Sentinel) != 1 {
		t.Errorf("the passing marked test's output was shown:\n%s", shown.String())
	}
}

// TestWrapperOnFixture runs the wrapper on the tests in testdata/fixture.
func TestWrapperOnFixture(t *testing.T) {
	testtier.Slow(t, "runs go test on a fixture package")
	for _, tt := range []struct {
		fixture string
		code    int
		records []string // regexps, one per recorded rerun
		output  []string
	}{
		{fixture: "", code: 0, output: []string{"gotest: 10 passed, 0 skipped, 0 failed\n"}},
		{fixture: "unmarked", code: 1,
			output: []string{"TestUnmarkedFails is not marked known flaky: no rerun (fixture_test.go:", "gotest: FAIL\n"}},
		{fixture: "flaky", code: 0,
			records: []string{`kind=test package=\S+/fixture test=TestFlakyOnce attempt=2 outcome=pass reason="fixture: fails on its first attempt" failure="fixture_test.go:\d+: the first attempt fails"`},
			output:  []string{"gotest: rerun 1 of 2: ", "1 reruns of known-flaky tests recorded in "}},
		{fixture: "broken", code: 1,
			records: []string{`test=TestAlwaysFails attempt=2 outcome=fail reason="fixture: fails every time"`, `test=TestAlwaysFails attempt=3 outcome=fail`},
			output:  []string{"TestAlwaysFails still fails after 2 reruns (known flaky: fixture: fails every time)"}},
		{fixture: "subtest", code: 0,
			records: []string{`test=TestParent attempt=2 outcome=pass reason="fixture: a subtest fails on its first attempt" failure="fixture_test.go:\d+: the subtest's first attempt fails"`}},
		{fixture: "panic", code: 0,
			records: []string{`test=TestPanics attempt=2 outcome=pass reason="fixture: panics on its first attempt" failure="panic: the first attempt panics`},
			output:  []string{"the whole package (its test binary panicked or timed out)"}},
		{fixture: "hang", code: 0,
			records: []string{`test=TestHangs attempt=2 outcome=pass reason="fixture: hangs on its first attempt" failure="panic: test timed out after 2s"`},
			output:  []string{"the whole package (its test binary panicked or timed out)", "panic: test timed out after 2s"}},
		{fixture: "unmarked-hang", code: 1,
			output: []string{"TestUnmarkedHangs is not marked known flaky: no rerun (panic: test timed out after 2s)"}},
		{fixture: "flaky,unmarked", code: 1, // the marked test's rerun is still recorded
			records: []string{`test=TestFlakyOnce attempt=2 outcome=pass`},
			output:  []string{"TestUnmarkedFails is not marked known flaky"}},
	} {
		name := strings.ReplaceAll(tt.fixture, ",", "+")
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			t.Setenv("FIXTURE", tt.fixture)
			rec := filepath.Join(t.TempDir(), "out", "flaky.txt")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"-record", rec, "-count=1", "-timeout=2s", "--", "./testdata/fixture"}, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			for _, w := range tt.output {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			data, err := os.ReadFile(rec)
			if len(tt.records) == 0 {
				if !os.IsNotExist(err) {
					t.Errorf("recorded reruns of a run that needed none: %q, %v", data, err)
				}
			} else {
				lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
				if len(lines) != len(tt.records) {
					t.Errorf("%d records, want %d:\n%s", len(lines), len(tt.records), data)
				}
				for i, w := range tt.records {
					if i < len(lines) && !regexp.MustCompile(`^time=\S+ .*`+w).MatchString(lines[i]) {
						t.Errorf("record %d %q does not match %q", i, lines[i], w)
					}
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/camagent/camagent/internal/base/flakytest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = "usage: gotest [-record FILE] [-reruns N] [go test flags] -- PACKAGES..."

// options is the parsed command line.
type options struct {
	record  string   // file the reruns are appended to
	reruns  int      // reruns of a failed marked test
	flags   []string // go test flags, passed on to every run
	pkgs    []string // package patterns of the first run
	verbose bool     // -v among flags: print every line as it comes
}

func parseArgs(args []string) (options, error) {
	o := options{record: filepath.Join("out", "flaky.txt"), reruns: 2}
	for len(args) > 0 {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(args[0], "-"), "=")
		if !strings.HasPrefix(args[0], "-") || (name != "record" && name != "reruns") {
			break
		}
		if !hasValue {
			if len(args) < 2 {
				return o, fmt.Errorf("-%s needs a value", name)
			}
			value, args = args[1], args[1:]
		}
		args = args[1:]
		switch name {
		case "record":
			o.record = value
		case "reruns":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				return o, fmt.Errorf("-reruns %q: want a count", value)
			}
			o.reruns = n
		}
	}
	i := slices.Index(args, "--")
	if i < 0 || i == len(args)-1 {
		return o, errors.New("no packages after --")
	}
	o.flags, o.pkgs = args[:i], args[i+1:]
	for _, f := range o.flags {
		switch strings.TrimLeft(f, "-") {
		case "v", "v=true", "test.v", "test.v=true":
			o.verbose = true
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "gotest: %v\n%s\n", err, usage)
		return 2
	}
	first, err := goTest(ctx, o, o.pkgs, 1, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "gotest:", err)
		return 1
	}
	ok := true
	marked, unmarked, broken := first.failures()
	for _, f := range unmarked {
		ok = false
		fmt.Fprintf(stdout, "gotest: FAIL %s %s is not marked known flaky: no rerun (%s)\n", f.pkg, f.test, f.detail)
	}
	for _, p := range broken {
		ok = false
		fmt.Fprintf(stdout, "gotest: FAIL %s failed outside any test (build error, TestMain or exit)\n", p)
	}
	if first.exitErr != nil && len(marked)+len(unmarked)+len(broken) == 0 {
		ok = false
		fmt.Fprintf(stdout, "gotest: go test failed (%v) without a failing test or package\n", first.exitErr)
	}
	reruns := 0
	for _, pkg := range packagesOf(marked) {
		n, passed := rerun(ctx, o, first, pkg, marked, stdout, stderr)
		reruns += n
		ok = ok && passed
	}
	fmt.Fprintf(stdout, "gotest: %d passed, %d skipped, %d failed", first.counts["pass"], first.counts["skip"], first.counts["fail"])
	if reruns > 0 {
		fmt.Fprintf(stdout, "; %d reruns of known-flaky tests recorded in %s", reruns, o.record)
	}
	fmt.Fprintln(stdout)
	if !ok {
		fmt.Fprintln(stdout, "gotest: FAIL")
		return 1
	}
	return 0
}

// rerun reruns the failed marked tests of pkg until they pass or the
// reruns run out, recording each. It returns the number of records and
// whether the package ends up passing.
func rerun(ctx context.Context, o options, first *results, pkg string, marked []failure, stdout, stderr io.Writer) (int, bool) {
	pending := map[string]failure{} // top-level test -> its first failure
	for _, f := range marked {
		if f.pkg == pkg {
			if _, seen := pending[f.top()]; !seen {
				pending[f.top()] = f
			}
		}
	}
	whole := first.panicked[pkg]
	n := 0
	for attempt := 2; attempt <= 1+o.reruns && len(pending) > 0; attempt++ {
		tops := slices.Sorted(maps.Keys(pending))
		r := o
		what := strings.Join(tops, " ")
		if whole {
			what = "the whole package (its test binary panicked or timed out)"
		} else {
			quoted := make([]string, len(tops))
			for i, t := range tops {
				quoted[i] = regexp.QuoteMeta(t)
			}
			r.flags = append(slices.Clip(o.flags), "-run", "^("+strings.Join(quoted, "|")+")$")
		}
		fmt.Fprintf(stdout, "gotest: rerun %d of %d: %s %s (known flaky)\n", attempt-1, o.reruns, pkg, what)
		res, err := goTest(ctx, r, []string{pkg}, attempt, stdout, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "gotest:", err)
			return n, false
		}
		for _, top := range tops {
			f := pending[top]
			outcome := res.result[key{pkg, top}]
			if outcome == "" {
				outcome = "not-run"
			}
			if err := record(o.record, "test", pkg, top, attempt, outcome, f.reason, f.detail); err != nil {
				fmt.Fprintln(stderr, "gotest:", err)
			}
			n++
			if outcome == "pass" || outcome == "skip" {
				delete(pending, top)
			}
		}
		again, unmarked, broken := res.failures()
		if len(unmarked) > 0 || len(broken) > 0 {
			for _, f := range unmarked {
				fmt.Fprintf(stdout, "gotest: FAIL %s %s is not marked known flaky (failed in a rerun: %s)\n", f.pkg, f.test, f.detail)
			}
			for _, p := range broken {
				fmt.Fprintf(stdout, "gotest: FAIL %s failed outside any test in a rerun\n", p)
			}
			return n, false
		}
		for _, f := range again {
			if _, seen := pending[f.top()]; !seen {
				pending[f.top()] = f // a marked test that had not run before the panic
			}
		}
		whole = res.panicked[pkg]
	}
	for _, top := range slices.Sorted(maps.Keys(pending)) {
		fmt.Fprintf(stdout, "gotest: FAIL %s %s still fails after %d reruns (known flaky: %s)\n", pkg, top, o.reruns, pending[top].reason)
	}
	return n, len(pending) == 0
}

// record appends one rerun to the record file.
func record(path, kind, pkg, test string, attempt int, outcome, reason, detail string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("time=%s kind=%s package=%s test=%s attempt=%d outcome=%s reason=%q failure=%q\n",
		time.Now().UTC().Format(time.RFC3339), kind, pkg, test, attempt, outcome, reason, detail)
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// goTest runs go test -json once and prints its output as plain go test
// would.
func goTest(ctx context.Context, o options, pkgs []string, attempt int, stdout, stderr io.Writer) (*results, error) {
	args := append(append([]string{"test", "-json"}, o.flags...), pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), flakytest.AttemptEnv+"="+strconv.Itoa(attempt))
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("go test: %w", err)
	}
	res := newResults(stdout, o.verbose)
	readErr := res.read(out)
	waitErr := cmd.Wait()
	if readErr != nil {
		return nil, fmt.Errorf("reading go test -json: %w", readErr)
	}
	var exit *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exit) {
		return nil, fmt.Errorf("go test: %w", waitErr)
	}
	res.exitErr = waitErr
	return res, nil
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string
	FailedBuild string
}

type key struct{ pkg, test string }

// results is what one go test run reported.
type results struct {
	out     io.Writer
	verbose bool

	started  []key            // tests in the order they started
	output   map[key][]string // output of tests still running or failed
	mark     map[key]string   // reason of each marked test
	result   map[key]string   // pass, fail or skip
	failed   []key            // failed tests in order
	pkgFail  map[string]bool  // packages that failed
	panicked map[string]bool  // packages whose test binary panicked or timed out
	counts   map[string]int
	exitErr  error
}

func newResults(out io.Writer, verbose bool) *results {
	return &results{out: out, verbose: verbose,
		output: map[key][]string{}, mark: map[key]string{}, result: map[key]string{},
		pkgFail: map[string]bool{}, panicked: map[string]bool{}, counts: map[string]int{}}
}

func (r *results) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(r.out, sc.Text()) // not an event: pass it on
			continue
		}
		r.add(e)
	}
	return sc.Err()
}

func (r *results) add(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "run":
		r.started = append(r.started, k)
	case "build-output":
		fmt.Fprint(r.out, e.Output)
	case "output":
		if strings.HasPrefix(e.Output, "panic: ") || strings.Contains(e.Output, "test timed out after") {
			r.panicked[e.Package] = true
		}
		if e.Test == "" {
			if r.verbose || e.Output != "PASS\n" {
				fmt.Fprint(r.out, e.Output)
			}
			return
		}
		if _, reason, ok := strings.Cut(e.Output, flakytest.Sentinel); ok {
			r.mark[k] = strings.TrimSpace(reason)
		}
		if r.verbose {
			fmt.Fprint(r.out, e.Output)
		}
		r.output[k] = append(r.output[k], e.Output)
	case "pass", "skip", "fail":
		if e.Test == "" {
			if e.Action == "fail" {
				r.pkgFail[e.Package] = true
				r.cutOff(e.Package)
			}
			return
		}
		r.result[k] = e.Action
		r.counts[e.Action]++
		if e.Action == "fail" {
			r.failed = append(r.failed, k)
			if !r.verbose {
				fmt.Fprint(r.out, strings.Join(r.output[k], ""))
			}
			return
		}
		if e.Action == "skip" && !r.verbose {
			// Say what was left out and why, as go test -v would.
			for _, line := range r.output[k] {
				if !strings.HasPrefix(line, "=== ") {
					fmt.Fprint(r.out, line)
				}
			}
		}
		delete(r.output, k)
	}
}

// cutOff fails the tests of pkg that started and never ended: the test
// binary panicked, timed out or exited under them (test2json reports no
// result for them), and their output, the panic's included, is shown.
func (r *results) cutOff(pkg string) {
	for _, k := range r.started {
		if k.pkg != pkg || r.result[k] != "" {
			continue
		}
		r.result[k] = "fail"
		r.counts["fail"]++
		r.failed = append(r.failed, k)
		if !r.verbose {
			fmt.Fprint(r.out, strings.Join(r.output[k], ""))
		}
	}
}

// failure is a failed test with no failed subtest.
type failure struct {
	pkg, test string
	reason    string // the mark that covers it: its own or a parent's
	detail    string // its first error line
}

func (f failure) top() string { top, _, _ := strings.Cut(f.test, "/"); return top }

// errorLine matches t.Error's output: "    file_test.go:12: message".
var errorLine = regexp.MustCompile(`^\s+\S+\.go:\d+: `)

// failures sorts the failed tests of a run: those covered by a
// known-flaky mark, those not, and the packages that failed with no
// failed test.
func (r *results) failures() (marked, unmarked []failure, broken []string) {
	withTest := map[string]bool{}
	for _, k := range r.failed {
		withTest[k.pkg] = true
		if slices.ContainsFunc(r.failed, func(o key) bool { return o.pkg == k.pkg && strings.HasPrefix(o.test, k.test+"/") }) {
			continue // its failed subtests say why
		}
		f := failure{pkg: k.pkg, test: k.test}
		for name := k.test; ; {
			if reason, ok := r.mark[key{k.pkg, name}]; ok {
				f.reason = reason
				break
			}
			i := strings.LastIndex(name, "/")
			if i < 0 {
				break
			}
			name = name[:i]
		}
		for _, line := range r.output[k] {
			if errorLine.MatchString(line) && !strings.Contains(line, flakytest.Sentinel) || strings.HasPrefix(line, "panic: ") {
				f.detail = strings.TrimSpace(line)
				break
			}
		}
		if f.reason != "" {
			marked = append(marked, f)
		} else {
			unmarked = append(unmarked, f)
		}
	}
	for p := range r.pkgFail {
		if !withTest[p] {
			broken = append(broken, p)
		}
	}
	sort.Strings(broken)
	return marked, unmarked, broken
}

func packagesOf(fs []failure) []string {
	var pkgs []string
	for _, f := range fs {
		if !slices.Contains(pkgs, f.pkg) {
			pkgs = append(pkgs, f.pkg)
		}
	}
	return pkgs
}

package attack

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/testtier"
)

// The suite runs the real binary. It is built once per run into a
// temporary directory (or taken from CAMAGENT_BIN, as `make attack-test`
// passes bin/camagent), so the attacks hit exactly what ships.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func camagentBin(t *testing.T) string {
	t.Helper()
	testtier.System(t, "make attack-test") // real processes; once per CI run
	binOnce.Do(func() {
		if p := os.Getenv("CAMAGENT_BIN"); p != "" {
			binPath, binErr = filepath.Abs(p)
			return
		}
		binDir, binErr = os.MkdirTemp("", "camagent-attack-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "camagent")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/camagent")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func cleanupProcs() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// proc is a running camagent process whose log lines can be waited for.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	added chan struct{} // closed and replaced on every new line
	done  chan struct{}
}

// startProc runs `camagent args...` (prefixed by wrap, e.g. "ip netns exec
// NS", when given) until the test ends, collecting its stderr and stdout.
func startProc(t *testing.T, wrap []string, args ...string) *proc {
	t.Helper()
	argv := append(append([]string{}, wrap...), camagentBin(t))
	argv = append(argv, args...)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &proc{cmd: cmd, added: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.added)
			p.added = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("log of %s:\n%s", strings.Join(args, " "), p.log())
		}
	})
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLine waits up to timeout for a log line matching re and returns its
// submatches.
func (p *proc) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if m := re.FindStringSubmatch(p.lines[seen]); m != nil {
				p.mu.Unlock()
				return m
			}
		}
		added := p.added
		p.mu.Unlock()
		select {
		case <-added:
		case <-p.done:
			t.Fatalf("process exited before a line matching %q; log:\n%s", re, p.log())
		case <-deadline:
			t.Fatalf("no line matching %q within %v; log:\n%s", re, timeout, p.log())
		}
	}
}

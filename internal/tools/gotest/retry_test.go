package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/camagent/camagent/internal/base/testtier"
)

// TestRetryScript checks scripts/retry.sh, the system targets' half of the
// flaky record: a target not in KNOWN_FLAKY is not retried, a listed one
// is retried once and the retry recorded in this wrapper's format.
func TestRetryScript(t *testing.T) {
	testtier.Slow(t, "runs scripts/retry.sh with bash")
	script, err := filepath.Abs("../../../scripts/retry.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rec := filepath.Join(dir, "out", "flaky.txt")
	marker := filepath.Join(dir, "failed-once")
	failOnce := `if [ -e "$1" ]; then echo second try passes; else touch "$1"; echo "lab: no video after 30 s"; echo "make[1]: Leaving directory '/x'"; exit 3; fi`
	retry := func(reason string, args ...string) (int, string) {
		cmd := exec.Command(script, args...)
		cmd.Env = append(os.Environ(), "FLAKY_RECORD="+rec, "FLAKY_REASON="+reason)
		out, err := cmd.CombinedOutput()
		if exit, ok := err.(*exec.ExitError); ok {
			return exit.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}

	if code, out := retry("", "some-lab", "sh", "-c", failOnce, "sh", marker); code != 3 || !strings.Contains(out, "not in the Makefile's KNOWN_FLAKY list: no retry") {
		t.Errorf("unlisted target: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(rec); !os.IsNotExist(err) {
		t.Errorf("an unlisted target's failure was recorded (%v)", err)
	}
	os.Remove(marker)
	if code, out := retry(`TCG "speed"`, "qemu-test", "sh", "-c", failOnce, "sh", marker); code != 0 {
		t.Errorf("listed target failing once: exit %d\n%s", code, out)
	}
	if code, out := retry("always broken", "netlab-x", "false"); code != 1 {
		t.Errorf("listed target failing twice: exit %d\n%s", code, out)
	}
	data, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	want := []string{
		`^time=\S+Z kind=target target=qemu-test attempt=2 outcome=pass reason="TCG \\"speed\\"" failure="exit 3: lab: no video after 30 s"$`,
		`^time=\S+Z kind=target target=netlab-x attempt=2 outcome=fail reason="always broken" failure="exit 1"$`,
	}
	if len(lines) != len(want) {
		t.Fatalf("records:\n%s", data)
	}
	for i, w := range want {
		if !regexp.MustCompile(w).MatchString(lines[i]) {
			t.Errorf("record %q does not match %s", lines[i], w)
		}
	}
}

package testtier

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The helpers are checked in a child test binary so that the skips and
// the -short flag are real. The child's test is TestHelperTier, which
// does nothing unless TESTTIER_CHILD is set.
func TestHelperTier(t *testing.T) {
	switch os.Getenv("TESTTIER_CHILD") {
	case "slow":
		Slow(t, "reason shown")
		t.Log("ran")
	case "step":
		if SlowStep(t, "the step") {
			t.Log("step taken")
		}
	case "system":
		System(t, "make some-target")
		t.Log("ran")
	}
}

func child(t *testing.T, mode string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperTier$", "-test.v"}, args...)...)
	cmd.Env = append(append(os.Environ(), "TESTTIER_CHILD="+mode, SystemEnv+"="), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child %s %v: %v\n%s", mode, args, err, out)
	}
	return string(out)
}

func TestTiers(t *testing.T) {
	Slow(t, "re-executes the test binary")
	for _, tt := range []struct {
		mode string
		env  []string
		args []string
		want []string
	}{
		{"slow", nil, []string{"-test.short"}, []string{"--- SKIP", "slow tier (reason shown): make test runs it"}},
		{"slow", nil, nil, []string{"--- PASS", "ran"}},
		{"step", nil, []string{"-test.short"}, []string{"--- PASS", "the step left out under -short"}},
		{"step", nil, nil, []string{"--- PASS", "step taken"}},
		{"system", nil, nil, []string{"--- SKIP", "`make some-target` runs it (CAMAGENT_SYSTEM_TEST=1)"}},
		{"system", []string{SystemEnv + "=1"}, nil, []string{"--- PASS", "ran"}},
	} {
		out := child(t, tt.mode, tt.env, tt.args...)
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s %v %v: output lacks %q:\n%s", tt.mode, tt.env, tt.args, w, out)
			}
		}
	}
}

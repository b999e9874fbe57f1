package testtier

import (
	"os"
	"testing"
)

// SystemEnv is the environment variable a make target sets to 1 to run
// the system tests it names (see [System]).
const SystemEnv = "CAMAGENT_SYSTEM_TEST"

// Slow skips t under `go test -short`: t is in the slow tier for the
// reason why (what makes it slow or not hermetic, e.g. "QUIC end to end
// on loopback"). Call it first in the test, or in the helper that builds
// the slow environment.
func Slow(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("slow tier (%s): make test runs it", why)
	}
}

// SlowStep reports whether a fast test should take an optional slow step
// (why says what the step is, e.g. "decode check with ffprobe"). Under
// -short it logs that the step is left out and returns false.
func SlowStep(t testing.TB, why string) bool {
	t.Helper()
	if testing.Short() {
		t.Logf("slow tier: %s left out under -short (make test runs it)", why)
		return false
	}
	return true
}

// System skips t unless [SystemEnv] is 1: t is a system test that takes
// minutes or the whole machine, run by its own make target (target, e.g.
// "make powerloss-test"), which sets the variable. `go test ./...` without
// -short does not run it, so that `make test` runs it once, on its own,
// through that target.
func System(t testing.TB, target string) {
	t.Helper()
	if os.Getenv(SystemEnv) != "1" {
		t.Skipf("system test: `%s` runs it (%s=1)", target, SystemEnv)
	}
}

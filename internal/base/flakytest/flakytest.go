package flakytest

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// Sentinel starts the log line that Mark writes; the wrapper finds marked
// tests by it in `go test -json` output.
const Sentinel = "flakytest: known flaky: "

// AttemptEnv is set by the wrapper to the run's attempt number: 1 for the
// first run of the tests, 2 and up for reruns of failed marked tests.
const AttemptEnv = "CAMAGENT_TEST_ATTEMPT"

// Mark marks t as known flaky for reason, which must say why the test
// flakes and where it is tracked. Call it first in the test (a mark on a
// parent test covers its subtests).
func Mark(t testing.TB, reason string) {
	t.Helper()
	reason = strings.Join(strings.Fields(reason), " ")
	if reason == "" {
		t.Fatal("flakytest.Mark: a known flaky test needs its reason (why, and the issue)")
		return
	}
	t.Log(Sentinel + reason)
}

// Attempt returns the wrapper's attempt number for this run: 1 outside
// the wrapper and on the first run, 2 and up on reruns.
func Attempt() int {
	if n, err := strconv.Atoi(os.Getenv(AttemptEnv)); err == nil && n > 0 {
		return n
	}
	return 1
}

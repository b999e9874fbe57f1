package flakytest

import "testing"

// fakeT records what Mark does to a test.
type fakeT struct {
	testing.TB
	logs   []string
	failed bool
}

func (f *fakeT) Helper()             {}
func (f *fakeT) Log(args ...any)     { f.logs = append(f.logs, args[0].(string)) }
func (f *fakeT) Fatal(args ...any)   { f.failed = true }
func (f *fakeT) Logf(string, ...any) { panic("unused") }

func TestMarkLogsTheReason(t *testing.T) {
	f := &fakeT{}
	Mark(f, "  times out under load;\n\tissue 10 ")
	if f.failed || len(f.logs) != 1 || f.logs[0] != Sentinel+"times out under load; issue 10" {
		t.Fatalf("Mark logged %q (failed %v)", f.logs, f.failed)
	}
}

func TestMarkNeedsAReason(t *testing.T) {
	f := &fakeT{}
	Mark(f, " \n")
	if !f.failed || len(f.logs) != 0 {
		t.Fatalf("Mark without a reason: failed %v, logged %q", f.failed, f.logs)
	}
}

func TestAttempt(t *testing.T) {
	for env, want := range map[string]int{"": 1, "1": 1, "3": 3, "x": 1, "-2": 1} {
		t.Setenv(AttemptEnv, env)
		if got := Attempt(); got != want {
			t.Errorf("%s=%q: Attempt() = %d, want %d", AttemptEnv, env, got, want)
		}
	}
}

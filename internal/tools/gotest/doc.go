// Command gotest runs `go test -json` for `make test`: it prints what
// plain `go test` would (the output of failed tests, a line per package)
// and why each skipped test was skipped, reruns a failed test only if it is marked known flaky
// (internal/base/flakytest), records every rerun in out/flaky.txt, and
// fails the run when an unmarked test fails, even if it would pass on a
// rerun. Flakes are recorded, never hidden.
//
//	go run ./internal/tools/gotest [-record FILE] [-reruns N] [go test flags] -- PACKAGES...
//
// -record is the file the reruns are appended to (default out/flaky.txt),
// -reruns how many times a failed marked test is rerun (default 2). The
// go test flags are passed on to every run; a rerun adds -run with the
// failed top-level tests (the whole package if the test binary panicked
// or timed out, since the tests after the panic never ran) and sets
// CAMAGENT_TEST_ATTEMPT to its attempt number (flakytest.Attempt).
//
// A record is one logfmt line per rerun:
//
//	time=... kind=test package=... test=TestX attempt=2 outcome=pass reason="..." failure="x_test.go:12: ..."
//
// scripts/retry.sh appends kind=target lines in the same format for the
// system targets of the Makefile.
//
// It imports only the standard library and flakytest's constants.
package main

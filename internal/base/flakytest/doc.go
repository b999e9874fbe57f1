// Package flakytest marks known flaky tests, in the style of tailscale's
// flakytest: a test that is known to fail now and then calls
//
//	flakytest.Mark(t, "why it flakes; issue N")
//
// first, with the reason next to the mark. The test wrapper that
// `make test` uses (internal/tools/gotest) reruns a failed test only if it
// carries the mark, records every rerun in out/flaky.txt, and fails the
// run when an unmarked test fails, even if it would pass on a rerun.
// Plain `go test` is unaffected: the mark is one log line.
//
// A mark is a debt, not a fix: remove it with the fix. This package
// imports only the standard library: any test may use it.
package flakytest

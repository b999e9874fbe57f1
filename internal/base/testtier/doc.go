// Package testtier sorts camagent's tests into two tiers, so that
// `go test -short ./...` stays fast and hermetic and `make test` runs
// everything.
//
// The short tier runs tests that are pure logic, parsers, fuzz seeds,
// in-memory pipes, files under t.TempDir, and plain UDP, TCP or unix
// sockets on loopback where the socket itself is under test. A test is in
// the slow tier, and calls [Slow] first, when it
//
//   - makes a QUIC or TLS handshake (an agent, a relay, a stream hub or a
//     traversal end to end over loopback);
//   - runs an external program or a child process (ffprobe,
//     systemd-analyze, make, go build, a re-exec of the test binary);
//   - uses the cgo software H.264 encoder (openh264);
//   - needs root, a mount or a device (tmpfs, /dev/video*);
//   - waits on real time for more than about half a second.
//
// A fast test with one slow, optional step (a decode check with ffprobe
// after pure-Go work) keeps running under -short and asks [SlowStep]
// whether to take that step. System tests (the power-loss test, the NAT
// matrix) are run by their own make targets only: see [System].
//
// The reason is part of the skip message, so `go test -short -v` says
// why each test was left out. This package imports only the standard
// library: any test may use it.
package testtier

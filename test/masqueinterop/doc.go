// Package masqueinterop checks camagent's relay against another
// implementation of RFC 9298: quic-go/masque-go's client sends datagrams
// through `camagent relay` (the built binary, run as a process) to a UDP
// echo, and a benchmark runs the same client through our relay and through
// masque-go's own proxy side by side (docs/benchmarks.md).
//
// It is a module of its own so that the product's go.mod stays on the
// quic-go version it uses: masque-go v0.6.0 builds only against quic-go
// v0.64.1 (v0.65.0 changed HTTPStreamer), and Go's minimum version
// selection would lift it to the product's v0.65.0 if this module
// required camagent. So it does not import camagent; it talks to the relay
// as any client would. `make masque-interop` runs it.
package masqueinterop

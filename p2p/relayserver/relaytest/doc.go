// Package relaytest starts real MASQUE relays (p2p/relayserver) for tests,
// as net/http/httptest starts HTTP servers: on a loopback UDP socket (or
// one the test opened), with a fresh key and a fresh camera token unless
// the test brings its own, torn down by the test's Cleanup. Every test
// that needs a relay in-process starts it here.
//
// It imports only the relay server and identity: the relay client's own
// tests (package relayclient) use it, so it must not import
// p2p/relayclient. The relay URL it hands out is the plain string of
// docs/relay.md; tests parse it with relayclient.ParseRelayURL.
package relaytest

// Package relayclient is the client side of camagent's MASQUE relays: a camera
// registers a listening socket with connect-udp-listen and gets a
// net.PacketConn over the tunnel's HTTP Datagrams (Conn), several of which
// a Mux joins with the direct UDP socket under one quic.Transport; Keeper
// keeps one registration per relay alive; Locate lets a paired viewer find
// a camera's current public address.
package relayclient

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/quic-go/quic-go/http3"

	"github.com/camagent/camagent/internal/feature/identity"
)

// RelayURL is a parsed relay URL: https://HOST:PORT/?fp=RELAY-KEY[&rv=SECRET].
// fp pins the relay's key; rv, only in what viewers hold, is the camera's
// locator secret (docs/relay.md).
type RelayURL struct {
	Addr        string // host:port (UDP)
	Fingerprint string // the relay's key, canonical form
	Secret      []byte // locator secret, 32 bytes, or nil
}

// ParseRelayURL parses and checks a relay URL.
func ParseRelayURL(s string) (RelayURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return RelayURL{}, fmt.Errorf("relay url: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return RelayURL{}, fmt.Errorf("relay url %q: want https://host:port/?fp=KEY", s)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return RelayURL{}, fmt.Errorf("relay url %q: host:port needed", s)
	}
	q := u.Query()
	fp, err := identity.ParseFingerprint(q.Get("fp"))
	if err != nil {
		return RelayURL{}, fmt.Errorf("relay url %q: fp: %w", s, err)
	}
	r := RelayURL{Addr: u.Host, Fingerprint: fp}
	if rv := q.Get("rv"); rv != "" {
		if r.Secret, err = hex.DecodeString(rv); err != nil || len(r.Secret) != 32 {
			return RelayURL{}, fmt.Errorf("relay url %q: rv must be 64 hex digits", s)
		}
	}
	return r, nil
}

// String renders the URL (with the secret, if any).
func (r RelayURL) String() string {
	s := "https://" + r.Addr + "/?fp=" + r.Fingerprint
	if r.Secret != nil {
		s += "&rv=" + hex.EncodeToString(r.Secret)
	}
	return s
}

// WithSecret is r carrying secret, as given to viewers in a pairing offer.
func (r RelayURL) WithSecret(secret []byte) RelayURL {
	r.Secret = secret
	return r
}

// LocatorSecret derives a camera's locator secret from its key, so it
// needs no state of its own and survives reboots; only viewers paired with
// the camera learn it, and the relay only ever sees its hash.
func LocatorSecret(id *identity.Identity) []byte {
	seed := id.Certificate.PrivateKey.(interface{ Seed() []byte }).Seed()
	mac := hmac.New(sha256.New, seed)
	mac.Write([]byte("camagent relay locator v1"))
	return mac.Sum(nil)
}

// LocatorHash is what a camera registers under: SHA-256 of its secret.
func LocatorHash(secret []byte) string {
	sum := sha256.Sum256(secret)
	return hex.EncodeToString(sum[:])
}

// OfferURLs turns the agent's relay URLs into what its pairing offer
// carries: each with the locator secret added.
func OfferURLs(relays []string, id *identity.Identity) ([]string, error) {
	secret := LocatorSecret(id)
	var out []string
	for _, s := range relays {
		r, err := ParseRelayURL(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r.WithSecret(secret).String())
	}
	return out, nil
}

// tlsConfig pins the relay's key and presents ours (for a key allow-list).
func (r RelayURL) tlsConfig(id *identity.Identity) *tls.Config {
	if id == nil {
		// No key to present (a viewer that only looks up): pin alone.
		id = &identity.Identity{}
	}
	conf := identity.ClientTLSConfig(id, r.Fingerprint, http3.NextProtoH3)
	if id.Leaf == nil {
		conf.Certificates = nil
	}
	host, _, _ := net.SplitHostPort(r.Addr)
	if net.ParseIP(host) == nil && !strings.Contains(host, ":") {
		conf.ServerName = host
	}
	return conf
}

// Package relayclient is the client side of camagent's MASQUE relays: a camera
// registers a listening socket with connect-udp-listen and gets a
// net.PacketConn over the tunnel's HTTP Datagrams (Conn), several of which
// a Mux joins with the direct UDP socket under one quic.Transport; Keeper
// keeps one registration per relay alive; Locate lets a paired viewer find
// a camera's current public address.
package relayclient

import (
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

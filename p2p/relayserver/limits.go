package relayserver

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"
)

// Registrations and CONNECT-UDP sockets are counted against the client
// that opened them, by who it is (its bearer token, or its key when the key
// allow-list admitted it) and by where it comes from (its source prefix,
// sourcePrefix), and in total. A client that opens a second QUIC
// connection is still the same token and the same prefix, so it gains
// nothing (issue 11: limits were per connection, and CONNECT-UDP was not
// counted at all). The datagram rate is limited per registration or
// socket, and in aggregate per identity and per source prefix.

// owner is who a registration or CONNECT-UDP socket counts against.
type owner struct {
	identity string       // "token:" + a hash of the token, or "key:" + fingerprint
	source   netip.Prefix // the client's sourcePrefix
	conn     *quic.Conn
}

// ownerOf identifies the client of an authorised request; identity is
// what authorised returned.
func ownerOf(r *http.Request, identity string) owner {
	o := owner{identity: identity, conn: serverConn(r)}
	if o.conn != nil {
		if ua, ok := o.conn.RemoteAddr().(*net.UDPAddr); ok {
			o.source = sourcePrefix(ua.AddrPort().Addr())
		}
	} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		o.source = sourcePrefix(ap.Addr())
	}
	return o
}

// tokenIdentity names a token without keeping it in logs or maps.
func tokenIdentity(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return "token:" + hex.EncodeToString(h[:6])
}

// share is one identity's or one prefix's use of the relay: how many
// registrations and sockets it holds and its aggregate datagram buckets.
type share struct {
	n        int
	limitIn  *tokenBucket // from peers, all its registrations together
	limitOut *tokenBucket // to peers
}

// grant is what acquire hands a registration or socket: the aggregate
// buckets its datagrams also draw from.
type grant struct {
	identity, source *share
}

// allowIn takes a token for one datagram from a peer to the client from
// every aggregate bucket (per identity, per source).
func (g grant) allowIn(now time.Time) bool {
	return (g.identity == nil || g.identity.limitIn.allowAt(now)) && (g.source == nil || g.source.limitIn.allowAt(now))
}

// allowOut is allowIn for the client's datagrams to peers.
func (g grant) allowOut(now time.Time) bool {
	return (g.identity == nil || g.identity.limitOut.allowAt(now)) && (g.source == nil || g.source.limitOut.allowAt(now))
}

// acquireLocked counts one registration or socket of o, or refuses it with
// errTooMany. s.mu is held.
func (s *Server) acquireLocked(o owner) (grant, error) {
	if s.registrations.Load()+s.sockets.Load() >= int64(s.cfg.MaxRegistrations) {
		return grant{}, errTooMany
	}
	if o.conn != nil && s.perConn[o.conn] >= s.cfg.MaxPerConn {
		return grant{}, errTooMany
	}
	if sh := s.byIdentity[o.identity]; sh != nil && sh.n >= s.cfg.MaxPerIdentity {
		return grant{}, errTooMany
	}
	if sh := s.bySource[o.source]; sh != nil && sh.n >= s.cfg.MaxPerSource {
		return grant{}, errTooMany
	}
	if o.conn != nil {
		s.perConn[o.conn]++
	}
	return grant{identity: takeShare(s, s.byIdentity, o.identity), source: takeShare(s, s.bySource, o.source)}, nil
}

func takeShare[K comparable](s *Server, m map[K]*share, k K) *share {
	sh := m[k]
	if sh == nil {
		rate, burst := s.cfg.AggregateDatagramRate, s.cfg.AggregateDatagramBurst
		sh = &share{limitIn: newTokenBucket(rate, burst, s.cfg.Now), limitOut: newTokenBucket(rate, burst, s.cfg.Now)}
		m[k] = sh
	}
	sh.n++
	return sh
}

// releaseLocked undoes acquireLocked. s.mu is held.
func (s *Server) releaseLocked(o owner) {
	if o.conn != nil {
		if s.perConn[o.conn]--; s.perConn[o.conn] <= 0 {
			delete(s.perConn, o.conn)
		}
	}
	dropShare(s.byIdentity, o.identity)
	dropShare(s.bySource, o.source)
}

func dropShare[K comparable](m map[K]*share, k K) {
	if sh := m[k]; sh != nil {
		if sh.n--; sh.n <= 0 {
			delete(m, k)
		}
	}
}

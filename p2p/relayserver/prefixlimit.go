package relayserver

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Rate limits for unauthenticated requests (locate, STUN) are kept per
// source prefix, never relay-wide: a relay-wide bucket is one an outsider
// drains for everybody (issue 11: one client made every viewer's Locate
// fail).
//
// The prefix is the unit an attacker gets cheaply:
//   - IPv4 /24. One address is too fine, since a rented server or a cloud
//     account gets a handful of addresses in one /24 for nothing; a /24 is
//     the smallest block routed on the Internet, so a second /24 means a
//     second network. The price is that users behind one carrier-grade NAT
//     pool share a bucket, which is why the per-prefix rates are generous
//     next to what one viewer needs (a locate or two and a few STUN
//     requests per connection attempt).
//   - IPv6 /56. Every home customer gets at least a /64 and usually a /56
//     (RIPE-690 recommends /56 or /48), so keying by /64 or finer would
//     give one customer 256 or 2^64 buckets; a /56 is one customer's
//     delegation. A customer with a /48 still gets 256 buckets, so a /48
//     also has a bucket of its own, 16 times the rate of a /56.
//
// Memory is bounded: at most prefixLimiterSize entries, least recently
// used first out. An evicted entry was idle longest; it comes back full,
// which only matters to an attacker who cycles through more prefixes than
// the table holds, and such an attacker is limited by its address space,
// not by the table.

// prefixLimiterSize bounds each limiter's table (about 100 bytes an entry).
const prefixLimiterSize = 1 << 16

// sourcePrefixes are the buckets a source address is counted in.
func sourcePrefixes(a netip.Addr) (fine, coarse netip.Prefix) {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		p, _ := a.Prefix(24)
		return p, netip.Prefix{}
	}
	fine, _ = a.Prefix(56)
	coarse, _ = a.Prefix(48)
	return fine, coarse
}

// sourcePrefix is the prefix that per-source counts (registrations,
// CONNECT-UDP sockets) are kept by.
func sourcePrefix(a netip.Addr) netip.Prefix {
	p, _ := sourcePrefixes(a)
	return p
}

type prefixBucket struct {
	key    netip.Prefix
	tokens float64
	last   time.Time
}

// prefixLimiter is a token bucket per source prefix, in an LRU table.
type prefixLimiter struct {
	rate, burst float64
	size        int
	now         func() time.Time

	mu    sync.Mutex
	byKey map[netip.Prefix]*list.Element
	lru   list.List // front: most recently used
}

func newPrefixLimiter(rate float64, burst int, now func() time.Time) *prefixLimiter {
	if burst < 1 {
		burst = 1
	}
	return &prefixLimiter{rate: rate, burst: float64(burst), size: prefixLimiterSize, now: now,
		byKey: map[netip.Prefix]*list.Element{}}
}

// allow takes a token from the buckets of a's prefixes (the /48 of an IPv6
// source has 16 times the /56's rate and burst).
func (l *prefixLimiter) allow(a netip.Addr) bool {
	fine, coarse := sourcePrefixes(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.bucket(fine, now, 1)
	if f.tokens < 1 {
		return false
	}
	if coarse.IsValid() {
		c := l.bucket(coarse, now, 16)
		if c.tokens < 1 {
			return false
		}
		c.tokens--
	}
	f.tokens--
	return true
}

// bucket returns key's bucket refilled to now, creating (and evicting)
// as needed. scale multiplies rate and burst.
func (l *prefixLimiter) bucket(key netip.Prefix, now time.Time, scale float64) *prefixBucket {
	burst := l.burst * scale
	if e, ok := l.byKey[key]; ok {
		l.lru.MoveToFront(e)
		b := e.Value.(*prefixBucket)
		b.tokens += now.Sub(b.last).Seconds() * l.rate * scale
		if b.tokens > burst {
			b.tokens = burst
		}
		b.last = now
		return b
	}
	if l.lru.Len() >= l.size {
		old := l.lru.Back()
		l.lru.Remove(old)
		delete(l.byKey, old.Value.(*prefixBucket).key)
	}
	b := &prefixBucket{key: key, tokens: burst, last: now}
	l.byKey[key] = l.lru.PushFront(b)
	return b
}

// len is the number of prefixes held (for tests).
func (l *prefixLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

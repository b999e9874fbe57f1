package relayserver

import (
	"sync/atomic"
	"time"
)

// tokenBucket allows rate events per second with bursts of burst. It is
// the generic cell rate algorithm (GCRA, ITU-T I.371), the token bucket
// written as one "theoretical arrival time": an event is allowed if that
// time, advanced by one interval, stays within burst intervals of now.
// One atomic compare-and-swap and no lock, since the datagram paths check
// several buckets per datagram (the registration's, its identity's, its
// source prefix's) and the shared ones are hit by many goroutines. A
// handful of bytes, so every registration can have one.
type tokenBucket struct {
	interval int64 // nanoseconds per event
	limit    int64 // burst * interval
	base     time.Time
	tat      atomic.Int64 // theoretical arrival time, ns after base
	now      func() time.Time
}

func newTokenBucket(rate float64, burst int, now func() time.Time) *tokenBucket {
	if burst < 1 {
		burst = 1
	}
	interval := int64(0) // a rate of a billion or more per second: no limit
	if rate < 1e9 {
		interval = int64(float64(time.Second) / rate)
	}
	return &tokenBucket{interval: interval, limit: int64(burst) * interval, base: now(), now: now}
}

// allow takes a token if one is left.
func (b *tokenBucket) allow() bool { return b.allowAt(b.now()) }

// allowAt is allow with the time given, for callers that check several
// buckets for one event.
func (b *tokenBucket) allowAt(now time.Time) bool {
	t := int64(now.Sub(b.base))
	for {
		tat := b.tat.Load()
		next := max(tat, t) + b.interval
		if next-t > b.limit {
			return false
		}
		if b.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}

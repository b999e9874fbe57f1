package traversal

import (
	"net/netip"
	"sync"
	"time"
)

// Limits on what PUNCH_ME_NOW can make a camera send (issue 4 item 6,
// docs/nat-traversal.md §5). They bound the camera's output toward any
// address to a few hundred bytes per round, and toward addresses no viewer
// is connected from to nothing.
const (
	// DefaultPunchesPerPair is how many punch packets one pair of one round
	// gets, spread over about one probe timeout.
	DefaultPunchesPerPair = 10
	// DefaultPunchInterval spaces punch packets of one pair.
	DefaultPunchInterval = 100 * time.Millisecond
	// MaxPairsPerRound bounds the pairs one round may punch.
	MaxPairsPerRound = 4
	// MaxTargetsPerConn bounds the distinct addresses one connection can
	// ever have punched, so a viewer cannot walk a LAN.
	MaxTargetsPerConn = 8
	// MinRoundInterval is the least time between two rounds that punch.
	MinRoundInterval = 500 * time.Millisecond
	// DefaultGlobalRate and DefaultGlobalBurst bound the punch and echo
	// packets of all connections together (packets per second).
	DefaultGlobalRate  = 200
	DefaultGlobalBurst = 100
)

// GuardConfig configures a Guard.
type GuardConfig struct {
	// LocalPrefixes are the camera's on-link networks: a viewer's host
	// candidate may be punched only inside one (a same-LAN viewer). Other
	// targets must be addresses the viewer was observed at.
	LocalPrefixes []netip.Prefix
	// Rate and Burst bound punch and echo packets camera-wide; 0 means the
	// defaults.
	Rate  float64
	Burst float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Guard is the camera-wide policy for packets sent outside QUIC: which
// targets are allowed, and a token bucket for all of them. One Guard is
// shared by every connection's Server and the Responder.
type Guard struct {
	cfg GuardConfig

	mu      sync.Mutex
	tokens  float64
	last    time.Time
	targets map[netip.AddrPort]int // punch targets of live connections, counted
	// Birthday attempts (spray.go): a bucket of MaxSpraysPerMinute, and
	// the IPs sprayed lately, whose fan-out packets are answered.
	sprayTokens float64
	sprayLast   time.Time
	fanFrom     map[netip.Addr]time.Time
	fanOuts     int // fan-outs holding their sockets now
}

// NewGuard returns a Guard.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultGlobalRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultGlobalBurst
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	now := cfg.Now()
	return &Guard{
		cfg: cfg, tokens: cfg.Burst, last: now, targets: make(map[netip.AddrPort]int),
		sprayTokens: MaxSpraysPerMinute, sprayLast: now, fanFrom: make(map[netip.Addr]time.Time),
	}
}

// onLink reports whether ip is inside one of the camera's own networks.
func (g *Guard) onLink(ip netip.Addr) bool {
	for _, p := range g.cfg.LocalPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// take spends one packet of the camera-wide budget.
func (g *Guard) take() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Now()
	g.tokens += now.Sub(g.last).Seconds() * g.cfg.Rate
	g.last = now
	if g.tokens > g.cfg.Burst {
		g.tokens = g.cfg.Burst
	}
	if g.tokens < 1 {
		return false
	}
	g.tokens--
	return true
}

func (g *Guard) hold(a netip.AddrPort) {
	g.mu.Lock()
	g.targets[a]++
	g.mu.Unlock()
}

func (g *Guard) release(a netip.AddrPort) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.targets[a]--; g.targets[a] <= 0 {
		delete(g.targets, a)
	}
}

// IsTarget reports whether a live connection has punched a: the only
// addresses a Responder answers.
func (g *Guard) IsTarget(a netip.AddrPort) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.targets[unmap(a)] > 0
}

// takeSpray spends one birthday attempt of the camera-wide budget.
func (g *Guard) takeSpray() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Now()
	g.sprayTokens = min(g.sprayTokens+now.Sub(g.sprayLast).Minutes()*MaxSpraysPerMinute, MaxSpraysPerMinute)
	g.sprayLast = now
	if g.sprayTokens < 1 {
		return false
	}
	g.sprayTokens--
	return true
}

// MaxConcurrentFanOuts bounds the fan-outs that hold their sockets at
// once, camera-wide: each is portspray.DefaultSockets descriptors for up to
// portspray.DefaultWindow, and a process under systemd's default
// LimitNOFILE (1024) must not run out of them for a burst of requests.
const MaxConcurrentFanOuts = 1

// beginFanOut reserves a fan-out; endFanOut releases it.
func (g *Guard) beginFanOut() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fanOuts >= MaxConcurrentFanOuts {
		return false
	}
	g.fanOuts++
	return true
}

func (g *Guard) endFanOut() {
	g.mu.Lock()
	g.fanOuts--
	g.mu.Unlock()
}

// answerFans lets the Responder answer fan-out packets from ip until
// until: the IP a spray went to.
func (g *Guard) answerFans(ip netip.Addr, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Now()
	for a, t := range g.fanFrom {
		if now.After(t) {
			delete(g.fanFrom, a)
		}
	}
	g.fanFrom[ip.Unmap()] = until
}

// answersFan reports whether a fan-out packet from ip is answered.
func (g *Guard) answersFan(ip netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.fanFrom[ip.Unmap()]
	return ok && !g.cfg.Now().After(t)
}

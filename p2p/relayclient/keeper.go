package relayclient

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/feature/identity"
)

// Backoff bounds for re-registering after a failure or a lost relay.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 30 * time.Second
	// stableAfter is how long a registration must last for the backoff
	// to start again from minBackoff.
	stableAfter = 30 * time.Second
)

// KeeperConfig is what a Keeper needs.
type KeeperConfig struct {
	Relays   []RelayURL
	Identity *identity.Identity
	Token    string
	Mux      *Mux
	Logger   *slog.Logger
	// Transport, if set, is what registrations dial on (Options.Transport).
	Transport *quic.Transport
	// Locators, if set, gives the locator hashes to register under at
	// relay r (called at each registration and by RefreshLocators).
	Locators func(r RelayURL) [][32]byte
	// Gate: registrations ask the relay to admit only peers that
	// located them (Options.Gate).
	Gate bool
	// OnChange, if set, is called with each new registration and with nil
	// when it ends (relay is the relay's address).
	OnChange func(relay string, c *Conn)
}

// Keeper keeps one registration with every relay alive, adding each to the
// Mux, and re-registers with jittered exponential backoff when one ends.
// Registering with every relay at once is the failover: viewers try the
// relays in turn and find the camera on any that is up.
//
// Its lifecycle: NewKeeper, Run until its context ends or Close, then Done
// and Err.
type Keeper struct {
	cfg  KeeperConfig
	log  *slog.Logger
	mu   sync.Mutex
	live map[string]*Conn // relay address -> current registration
	// registered receives the relay address after each successful
	// registration (for tests and status); it never blocks.
	registered chan string

	life    sync.Mutex
	started bool // Run was called
	closed  bool // Close was called
	cancel  context.CancelFunc
	done    chan struct{}
}

// errRunAgain is Run's answer on a Keeper that already ran or was closed.
var errRunAgain = errors.New("relayclient: Keeper.Run called twice or after Close")

// NewKeeper prepares a Keeper; Run runs it.
func NewKeeper(cfg KeeperConfig) *Keeper {
	return &Keeper{cfg: cfg, log: logging.Discard(cfg.Logger), live: map[string]*Conn{}, registered: make(chan string, 16), done: make(chan struct{})}
}

// Registered delivers the relay address after each registration.
func (k *Keeper) Registered() <-chan string { return k.registered }

// Public returns the current public address per relay address.
func (k *Keeper) Public() map[string]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]string{}
	for addr, c := range k.live {
		out[addr] = c.PublicAddr().String()
	}
	return out
}

// Run keeps the registrations until ctx ends or Close, then closes them.
// It returns nil (Err): a failed or lost registration is retried, never
// fatal. Run runs once; again, or after Close, it returns errRunAgain.
func (k *Keeper) Run(ctx context.Context) error {
	k.life.Lock()
	if k.started || k.closed {
		k.life.Unlock()
		return errRunAgain
	}
	ctx, k.cancel = context.WithCancel(ctx)
	k.started = true
	k.life.Unlock()
	var wg sync.WaitGroup
	for _, r := range k.cfg.Relays {
		wg.Add(1)
		go func() { defer wg.Done(); k.keep(ctx, r) }()
	}
	wg.Wait()
	k.cancel()
	close(k.done)
	return nil
}

// Close stops Run and waits until its registrations are closed. It is
// safe to call more than once, and before Run (which then does nothing).
func (k *Keeper) Close() error {
	k.life.Lock()
	first := !k.closed
	k.closed = true
	if k.started {
		k.cancel()
	} else if first {
		close(k.done)
	}
	k.life.Unlock()
	<-k.done
	return nil
}

// Done is closed when the Keeper has stopped: Run returned, or Close came
// first.
func (k *Keeper) Done() <-chan struct{} { return k.done }

// Err is why the Keeper stopped, once Done is closed: always nil, since it
// stops only when Run's context ends or by Close.
func (k *Keeper) Err() error {
	<-k.done
	return nil
}

func (k *Keeper) keep(ctx context.Context, r RelayURL) {
	log := k.log.With("relay", r.Addr)
	backoff := minBackoff
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := Register(rctx, Options{Relay: r, Identity: k.cfg.Identity, Token: k.cfg.Token, Logger: log, Transport: k.cfg.Transport,
			Locators: k.locators(r), Gate: k.cfg.Gate})
		cancel()
		if err != nil {
			wait := jitter(backoff)
			log.Warn("relay registration failed", "err", err, "retry_in", wait.Round(time.Millisecond))
			if !sleep(ctx, wait) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		started := time.Now()
		log.Info("registered with relay", "public", c.PublicAddr().String(), "observed", c.ObservedAddr().String())
		k.setLive(r.Addr, c)
		c.SetLocators(k.locators(r)) // a change while registering
		k.cfg.Mux.Add(c)
		select {
		case k.registered <- r.Addr:
		default:
		}
		select {
		case <-ctx.Done():
			c.Close()
			k.setLive(r.Addr, nil)
			return
		case <-c.Done():
		}
		k.setLive(r.Addr, nil)
		log.Warn("relay registration lost", "err", c.Err())
		if time.Since(started) > stableAfter {
			backoff = minBackoff
		}
		if !sleep(ctx, jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (k *Keeper) locators(r RelayURL) [][32]byte {
	if k.cfg.Locators == nil {
		return nil
	}
	return k.cfg.Locators(r)
}

// RefreshLocators sends every live registration its current locators
// (KeeperConfig.Locators) if they changed: the agent calls it when a
// viewer is paired or revoked or a pairing code is made or expires.
func (k *Keeper) RefreshLocators() {
	k.mu.Lock()
	live := make(map[string]*Conn, len(k.live))
	for addr, c := range k.live {
		live[addr] = c
	}
	k.mu.Unlock()
	for _, r := range k.cfg.Relays {
		if c := live[r.Addr]; c != nil {
			c.SetLocators(k.locators(r))
		}
	}
}

func (k *Keeper) setLive(addr string, c *Conn) {
	k.mu.Lock()
	if c == nil {
		delete(k.live, addr)
	} else {
		k.live[addr] = c
	}
	k.mu.Unlock()
	if k.cfg.OnChange != nil {
		k.cfg.OnChange(addr, c)
	}
}

// jitter spreads d over [d/2, 3d/2) so that cameras cut off by one relay
// restart do not all come back in the same instant.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

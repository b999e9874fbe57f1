// Package portspray opens a path through a NAT that maps
// endpoint-dependently ("symmetric": every destination gets a new random
// public port) toward a peer whose NAT maps endpoint-independently but
// filters by address and port, by the birthday paradox: the symmetric side
// fans out, sending from many fresh sockets (many random mappings) to the
// peer's one known address, while the peer sprays packets at many random
// ports of the symmetric side's public IP. A guess that lands on a mapping
// is a hole both ways: the mapping's conntrack entry matches the guess, and
// the guess opened the peer's filter for the mapping's port. With s
// sockets and g guesses over p ports, P(no hit) = (1-s/p)^g; with 256, 2048
// and 64512 that is e^-8.1, 0.03 % (docs/nat-traversal.md §3.4).
//
// The package only moves packets: which side plays which role, and whom it
// may send to, is decided by p2p/traversal.
package portspray

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Sizes of one attempt.
const (
	// DefaultSockets is how many mappings the fanning-out side makes.
	DefaultSockets = 256
	// DefaultGuesses is how many ports the spraying side tries.
	DefaultGuesses = 2048
	// MinPort and MaxPort bound the guesses: Linux NAT picks random ports
	// above 1023 for a source port above 1023 (nf_nat_l4proto_unique_tuple),
	// and so do the NATs of RFC 4787 REQ-3 (port range preserved).
	MinPort = 1024
	MaxPort = 65535
	// DefaultWindow is how long a fan-out waits for a hole.
	DefaultWindow = 2 * time.Second
	// batch and batchGap pace a spray: 32 packets per 4 ms, 2048 in
	// 256 ms, about 2.6 Mbit/s with headers, which a thin uplink (a
	// phone's, a camera's home line) carries beside the video. Pacing
	// costs little time: with 8 hits expected among the guesses, the
	// first comes after about a ninth of them.
	batch    = 32
	batchGap = 4 * time.Millisecond
)

// DefaultResend are the times, from the start of a fan-out, at which every
// socket sends its packet (again). The first makes the mappings; the later
// ones get through a filter that a guess opened before the mapping
// existed, so the two sides need not be in step.
var DefaultResend = []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, 700 * time.Millisecond}

// ErrNoHole means no socket of a fan-out heard from the target in time.
var ErrNoHole = errors.New("portspray: no socket heard from the target")

// ListenFunc opens n fresh UDP sockets, or as many as it can (at least
// one, or an error). One call for all of them lets a caller open them
// where it must, e.g. in the network namespace of the connection's socket.
type ListenFunc func(n int) ([]net.PacketConn, error)

// ListenUDP is a ListenFunc for sockets on ip (any port); the zero Addr
// means any address, dual-stack where the system allows it, as
// net.ListenUDP("udp", nil).
func ListenUDP(ip netip.Addr) ListenFunc {
	return func(n int) ([]net.PacketConn, error) {
		var out []net.PacketConn
		for range n {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
			if err != nil {
				if len(out) == 0 {
					return nil, err
				}
				break // out of descriptors: fan out with what we have
			}
			out = append(out, c)
		}
		return out, nil
	}
}

// FanOutConfig configures a fan-out.
type FanOutConfig struct {
	// Listen opens the sockets (on the address the connection's socket is
	// bound to).
	Listen ListenFunc
	// Sockets is how many to open; 0 means DefaultSockets.
	Sockets int
	// Target is the peer's endpoint-independent public address.
	Target netip.AddrPort
	// Packet is what each socket sends to Target.
	Packet []byte
	// Resend overrides DefaultResend.
	Resend []time.Duration
	// Window bounds the wait for a packet from Target; 0 means
	// DefaultWindow.
	Window time.Duration
}

// Winner is the socket a packet from the target arrived on: the hole.
type Winner struct {
	// Conn is the socket, no longer read by FanOut: the caller owns it
	// and closes it.
	Conn net.PacketConn
	// First is the packet that arrived first, From its source (Target).
	First []byte
	From  netip.AddrPort
	// Opened is how many sockets the fan-out had open.
	Opened int
}

// FanOut opens the sockets, sends Packet from each to Target, and returns
// the first socket that hears from Target, closing the others. It returns
// ErrNoHole after the window, or ctx's error.
// It is a call, not a long-lived component: its readers have ended when
// it returns, and its sender stops then too (FanOut cancels its context).
func FanOut(ctx context.Context, cfg FanOutConfig) (*Winner, error) {
	if cfg.Sockets <= 0 {
		cfg.Sockets = DefaultSockets
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Resend == nil {
		cfg.Resend = DefaultResend
	}
	f := &fanOut{cfg: cfg, won: make(chan *Winner, 1)}
	if err := f.open(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Window)
	defer cancel()
	go f.send(ctx)
	select {
	case w := <-f.won:
		f.closeAllBut(w.Conn)
		w.Opened = len(f.conns)
		return w, nil
	case <-ctx.Done():
		// A socket may claim the win just now: it is closed with the
		// rest, since nobody will take it.
		f.closeAllBut(nil)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, ErrNoHole
		}
		return nil, ctx.Err()
	}
}

type fanOut struct {
	cfg   FanOutConfig
	conns []net.PacketConn
	won   chan *Winner
	wg    sync.WaitGroup

	mu     sync.Mutex
	winner net.PacketConn
}

func (f *fanOut) open() error {
	conns, err := f.cfg.Listen(f.cfg.Sockets)
	if err != nil {
		return fmt.Errorf("portspray: %w", err)
	}
	if len(conns) == 0 {
		return errors.New("portspray: no socket opened")
	}
	f.conns = conns
	for _, c := range f.conns {
		f.wg.Add(1)
		go f.read(c)
	}
	return nil
}

// send sends the packet from every socket at each resend time.
func (f *fanOut) send(ctx context.Context) {
	start := time.Now()
	to := net.UDPAddrFromAddrPort(f.cfg.Target)
	for _, at := range f.cfg.Resend {
		t := time.NewTimer(time.Until(start.Add(at)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		for _, c := range f.conns {
			if f.isWinner(c) {
				continue // its owner writes to it now
			}
			_, _ = c.WriteTo(f.cfg.Packet, to)
		}
	}
}

// read waits on one socket for a packet from the target.
func (f *fanOut) read(c net.PacketConn) {
	defer f.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, addr, err := c.ReadFrom(buf)
		if err != nil {
			return // closed: a loser, or the fan-out ended
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		ap := ua.AddrPort()
		from := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if from != f.cfg.Target || !f.claim(c) {
			continue
		}
		// Hand the socket over: stop reading it before the new owner
		// does.
		f.won <- &Winner{Conn: c, First: append([]byte(nil), buf[:n]...), From: from}
		return
	}
}

func (f *fanOut) claim(c net.PacketConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.winner != nil {
		return false
	}
	f.winner = c
	return true
}

func (f *fanOut) isWinner(c net.PacketConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.winner == c
}

// closeAllBut closes every socket but keep and waits for the readers.
func (f *fanOut) closeAllBut(keep net.PacketConn) {
	for _, c := range f.conns {
		if c != keep {
			c.Close()
		}
	}
	f.wg.Wait()
}

// Spray sends packet to n distinct random ports of ip through write (the
// socket whose endpoint-independent mapping the peer's sockets target),
// paced, and returns how many it sent. It stops early when ctx ends.
func Spray(ctx context.Context, write func(b []byte, to netip.AddrPort) error, ip netip.Addr, n int, packet []byte) (int, error) {
	if n <= 0 {
		n = DefaultGuesses
	}
	sent := 0
	var firstErr error
	for i, port := range RandomPorts(n) {
		if i > 0 && i%batch == 0 {
			t := time.NewTimer(batchGap)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return sent, ctx.Err()
			}
		}
		if err := write(packet, netip.AddrPortFrom(ip, port)); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		sent++
	}
	if sent == 0 && firstErr != nil {
		return 0, fmt.Errorf("portspray: %w", firstErr)
	}
	return sent, nil
}

// RandomPorts returns n distinct ports in [MinPort, MaxPort] in random
// order (all of them if n is larger).
func RandomPorts(n int) []uint16 {
	const span = MaxPort - MinPort + 1
	n = min(n, span)
	seen := make(map[uint16]bool, n)
	out := make([]uint16, 0, n)
	for len(out) < n {
		p := uint16(MinPort + rand.IntN(span))
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

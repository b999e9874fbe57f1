package portspray

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func listenLoopback() (net.PacketConn, error) { return net.ListenPacket("udp", "127.0.0.1:0") }

// openedLog is a ListenFunc on loopback that remembers every socket it
// opened and shows each to onOpen, if set.
type openedLog struct {
	mu     sync.Mutex
	conns  []net.PacketConn
	onOpen func(net.PacketConn)
}

func (o *openedLog) listen(n int) ([]net.PacketConn, error) {
	cs, err := ListenUDP(netip.MustParseAddr("127.0.0.1"))(n)
	o.mu.Lock()
	o.conns = append(o.conns, cs...)
	o.mu.Unlock()
	for _, c := range cs {
		if o.onOpen != nil {
			o.onOpen(c)
		}
	}
	return cs, err
}

func addrOf(t *testing.T, c net.PacketConn) netip.AddrPort {
	t.Helper()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// The peer answers the first fan-out packet it gets; that socket wins,
// every other one is closed, and the winner is handed over unread.
func TestFanOutHandsOverTheSocketThatHeardTheTarget(t *testing.T) {
	peer, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var opened openedLog
	answered := make(chan netip.AddrPort, 1)
	go func() {
		buf := make([]byte, 64)
		n, from, err := peer.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "fan" {
			return
		}
		peer.WriteTo([]byte("hole"), from)
		answered <- from.(*net.UDPAddr).AddrPort()
	}()
	w, err := FanOut(context.Background(), FanOutConfig{Listen: opened.listen, Sockets: 16, Target: addrOf(t, peer), Packet: []byte("fan")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Conn.Close()
	if got, want := addrOf(t, w.Conn), <-answered; got != want {
		t.Fatalf("winner %v, the peer answered %v", got, want)
	}
	if string(w.First) != "hole" || w.From != addrOf(t, peer) || w.Opened != 16 {
		t.Fatalf("winner %+v", w)
	}
	for _, c := range opened.conns {
		if c == w.Conn {
			continue
		}
		if _, err := c.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(addrOf(t, peer))); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a losing socket is still open: %v", err)
		}
	}
	// The new owner reads the winner: FanOut no longer does.
	peer.WriteTo([]byte("next"), w.Conn.LocalAddr())
	w.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _, err := w.Conn.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "next" {
		t.Fatalf("read after hand-over: %q, %v", buf[:n], err)
	}
}

// Packets from anyone but the target do not win; with no answer the
// fan-out ends with ErrNoHole and closes everything.
func TestFanOutWithoutAnswer(t *testing.T) {
	peer, _ := listenLoopback()
	defer peer.Close()
	stranger, _ := listenLoopback()
	defer stranger.Close()
	opened := openedLog{onOpen: func(c net.PacketConn) {
		stranger.WriteTo([]byte("not the target"), c.LocalAddr())
	}}
	_, err := FanOut(context.Background(), FanOutConfig{Listen: opened.listen, Sockets: 4, Target: addrOf(t, peer), Packet: []byte("fan"), Window: 200 * time.Millisecond})
	if !errors.Is(err, ErrNoHole) {
		t.Fatalf("err = %v, want ErrNoHole", err)
	}
	for _, c := range opened.conns {
		if _, err := c.WriteTo([]byte("x"), peer.LocalAddr()); !errors.Is(err, net.ErrClosed) {
			t.Fatal("socket left open")
		}
	}
}

func TestFanOutListenFailure(t *testing.T) {
	_, err := FanOut(context.Background(), FanOutConfig{
		Listen: func(int) ([]net.PacketConn, error) { return nil, errors.New("EMFILE") },
		Target: netip.MustParseAddrPort("127.0.0.1:9"),
	})
	if err == nil {
		t.Fatal("no error")
	}
}

func TestSprayHitsDistinctPortsInRange(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.7")
	seen := map[uint16]bool{}
	sent, err := Spray(context.Background(), func(b []byte, to netip.AddrPort) error {
		if to.Addr() != ip || string(b) != "s" {
			t.Fatalf("sent %q to %v", b, to)
		}
		if to.Port() < MinPort || seen[to.Port()] {
			t.Fatalf("port %d repeated or out of range", to.Port())
		}
		seen[to.Port()] = true
		return nil
	}, ip, 300, []byte("s"))
	if err != nil || sent != 300 || len(seen) != 300 {
		t.Fatalf("sent %d (%d ports), %v", sent, len(seen), err)
	}
	if _, err := Spray(context.Background(), func([]byte, netip.AddrPort) error { return errors.New("down") }, ip, 10, nil); err == nil {
		t.Fatal("spray with every write failing reported no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := Spray(ctx, func([]byte, netip.AddrPort) error { return nil }, ip, 1000, nil); err == nil || n >= 1000 {
		t.Fatalf("cancelled spray sent %d, %v", n, err)
	}
}

func TestRandomPortsCoversTheRange(t *testing.T) {
	if got := len(RandomPorts(1 << 20)); got != MaxPort-MinPort+1 {
		t.Fatalf("%d ports", got)
	}
}

// BenchmarkHitRate measures the birthday odds the package relies on:
// DefaultSockets random mappings against DefaultGuesses distinct guesses.
func BenchmarkHitRate(b *testing.B) {
	hits := 0
	for b.Loop() {
		mapped := map[uint16]bool{}
		for _, p := range RandomPorts(DefaultSockets) {
			mapped[p] = true
		}
		for _, p := range RandomPorts(DefaultGuesses) {
			if mapped[p] {
				hits++
				break
			}
		}
	}
	b.ReportMetric(float64(hits)/float64(b.N)*100, "%hit")
}

package traversal_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/discovery"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/pathmux"
	"github.com/camagent/camagent/p2p/traversal"
	"github.com/camagent/camagent/stream"
)

// testTimeout bounds every wait; it is a failure deadline, not pacing.
const testTimeout = 20 * time.Second

const frameInterval = 10 * time.Millisecond // 100 fps: a gap shows fast

func serverTLS(tb testing.TB) *tls.Config {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{stream.ALPN}}
}

func listenUDP(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c net.PacketConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// forwarder stands in for the relay: it carries one viewer's datagrams to
// the camera and back, from its own address, like a TURN server.
func forwarder(tb testing.TB, camera netip.AddrPort) netip.AddrPort {
	c := listenUDP(tb)
	go func() {
		var viewer atomic.Value
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if from == camera {
				if v, ok := viewer.Load().(netip.AddrPort); ok {
					c.WriteToUDPAddrPort(buf[:n], v)
				}
				continue
			}
			viewer.Store(from)
			c.WriteToUDPAddrPort(buf[:n], camera)
		}
	}()
	return addrOf(c)
}

// blackhole wraps the camera's socket and drops all traffic with blocked
// addresses: a direct path that dies (NAT mapping expired, Wi-Fi gone).
type blackhole struct {
	net.PacketConn
	mu      sync.Mutex
	blocked map[netip.AddrPort]bool
}

func (b *blackhole) block(a netip.AddrPort) {
	b.mu.Lock()
	b.blocked[a] = true
	b.mu.Unlock()
}

func (b *blackhole) isBlocked(a net.Addr) bool {
	ap := a.(*net.UDPAddr).AddrPort()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.blocked[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]
}

func (b *blackhole) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, a, err := b.PacketConn.ReadFrom(p)
		if err != nil || !b.isBlocked(a) {
			return n, a, err
		}
	}
}

func (b *blackhole) WriteTo(p []byte, a net.Addr) (int, error) {
	if b.isBlocked(a) {
		return len(p), nil
	}
	return b.PacketConn.WriteTo(p, a)
}

// camera is the server side: a hub publishing numbered frames, and NAT
// traversal on a dedicated stream it opens per connection.
type camera struct {
	tr     *quic.Transport
	hole   *blackhole
	hub    *stream.Hub
	guard  *traversal.Guard
	cands  *candidate.Set
	server chan *traversal.Server
	conn   chan *quic.Conn
	// punch, if set, replaces tr.WriteTo for punch packets (a NAT that
	// maps the camera's punches to another port). Atomic: a test sets it
	// while the camera accepts connections.
	punch atomic.Pointer[func(b []byte, to net.Addr) (int, error)]
}

// dialThroughRelay dials the camera through the forwarder at relay from
// the viewer's socket vsock, as internal/core/viewer's relayed link does: a
// pathmux.Socket (onNonQUIC takes punches) and its route to the relay.
func dialThroughRelay(tb testing.TB, ctx context.Context, vsock net.PacketConn, relay netip.AddrPort,
	onNonQUIC func([]byte, netip.AddrPort)) (*pathmux.Socket, *quic.Transport, *quic.Conn) {
	tb.Helper()
	mux := pathmux.New(vsock, onNonQUIC)
	tb.Cleanup(func() { mux.Close() })
	relayRoute, err := mux.Route(relay, relay)
	if err != nil {
		tb.Fatal(err)
	}
	vtr := &quic.Transport{Conn: relayRoute}
	tb.Cleanup(func() { vtr.Close() })
	conn, err := vtr.Dial(ctx, net.UDPAddrFromAddrPort(relay),
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{stream.ALPN}}, // tests only
		&quic.Config{MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return mux, vtr, conn
}

// startClient accepts the camera's NAT traversal stream on conn and runs
// the viewer's traversal client on it, with vsock's address as the one
// host candidate; mutate adjusts the configuration. Its events arrive on
// the returned channel.
func startClient(tb testing.TB, ctx context.Context, conn *quic.Conn, mux *pathmux.Socket, vtr *quic.Transport,
	relay netip.AddrPort, vsock net.PacketConn, mutate func(*traversal.ClientConfig)) (*traversal.Client, <-chan traversal.Event) {
	tb.Helper()
	str, err := conn.AcceptStream(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	own := candidate.NewSet()
	own.Add(addrOf(vsock), candidate.Host, "host")
	events := make(chan traversal.Event, 16)
	cfg := traversal.ClientConfig{
		Conn: conn, Channel: natwire.NewStreamChannel(str), Socket: mux,
		RelayTransport: vtr, Relay: relay, Candidates: own,
		OnEvent: func(e traversal.Event) { events <- e },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	cl, err := traversal.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return cl, events
}

func startCamera(tb testing.TB, ctx context.Context) *camera {
	testtier.Slow(tb, "a camera and viewers over QUIC on loopback, migrating paths")
	udp := listenUDP(tb)
	hole := &blackhole{PacketConn: udp, blocked: make(map[netip.AddrPort]bool)}
	tr := &quic.Transport{Conn: hole}
	tb.Cleanup(func() { tr.Close() })
	ln, err := tr.Listen(serverTLS(tb), &quic.Config{MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	hosts, prefixes, err := candidate.HostAddrs(addrOf(udp).Port(), candidate.HostOptions{
		Loopback: true,
		InterfaceAddrs: func() ([]net.Addr, error) {
			return []net.Addr{&net.IPNet{IP: net.IPv4(127, 0, 0, 1), Mask: net.CIDRMask(8, 32)}}, nil
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	cam := &camera{
		tr: tr, hole: hole,
		hub:    stream.NewHub(stream.HubConfig{CameraName: "nat-test"}),
		guard:  traversal.NewGuard(traversal.GuardConfig{LocalPrefixes: prefixes}),
		cands:  candidate.NewSet(),
		server: make(chan *traversal.Server, 1),
		conn:   make(chan *quic.Conn, 1),
	}
	for _, h := range hosts {
		cam.cands.Add(h, candidate.Host, "host")
	}
	resp := traversal.NewResponder(traversal.ResponderConfig{Read: tr.ReadNonQUICPacket, Write: tr.WriteTo, Guard: cam.guard})
	tb.Cleanup(func() { resp.Close(); cam.hub.Close() })
	go cam.publish(ctx)
	go func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			go cam.serve(ctx, conn)
		}
	}()
	return cam
}

func (cam *camera) publish(ctx context.Context) {
	cam.hub.SetTrack(media.Track{Codec: media.CodecH264, Width: 64, Height: 48, FPS: 100,
		SPS: []byte{0x67, 0x42, 0xc0, 0x1f}, PPS: []byte{0x68, 0xce, 0x3c, 0x80}})
	t := time.NewTicker(frameInterval)
	defer t.Stop()
	for i := 0; ; i++ {
		cam.hub.Publish(media.AccessUnit{Codec: media.CodecH264, Key: i%50 == 0,
			PTS: time.Duration(i) * frameInterval, Captured: time.Now(), Data: []byte{0, 0, 0, 1, 0x65, byte(i)}})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (cam *camera) serve(ctx context.Context, conn *quic.Conn) {
	cam.conn <- conn
	go cam.hub.Serve(ctx, conn, "viewer")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return
	}
	ch := natwire.NewStreamChannel(str)
	rep := discovery.NewReporter(discovery.ReporterConfig{Remote: conn.RemoteAddr, Send: ch.Send})
	punch := cam.tr.WriteTo
	if p := cam.punch.Load(); p != nil {
		punch = *p
	}
	srv := traversal.NewServer(traversal.ServerConfig{
		Channel: ch, Candidates: cam.cands, Punch: punch, Guard: cam.guard, Peer: conn.RemoteAddr,
		Learner: discovery.NewLearner(cam.cands, "viewer"),
	})
	cam.server <- srv
	<-conn.Context().Done()
	rep.Close()
	srv.Close()
}

// frameCheck reads frames and reports any gap in their numbering.
type frameCheck struct {
	mu     sync.Mutex
	frames int
	lost   int
	last   time.Duration
	tick   chan struct{}
}

func (fc *frameCheck) run(ctx context.Context, c *stream.Client) error {
	first := true
	for {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			return err
		}
		fc.mu.Lock()
		if !first && f.PTS != fc.last+frameInterval {
			fc.lost += int((f.PTS-fc.last)/frameInterval) - 1
		}
		first, fc.last = false, f.PTS
		fc.frames++
		fc.mu.Unlock()
		select {
		case fc.tick <- struct{}{}:
		default:
		}
	}
}

func (fc *frameCheck) counts() (frames, lost int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.frames, fc.lost
}

// waitFrames waits until n more frames arrived.
func (fc *frameCheck) waitFrames(t *testing.T, n int) {
	t.Helper()
	start, _ := fc.counts()
	deadline := time.After(testTimeout)
	for {
		if got, _ := fc.counts(); got >= start+n {
			return
		}
		select {
		case <-fc.tick:
		case <-deadline:
			got, _ := fc.counts()
			t.Fatalf("frames stopped (%d of %d)", got-start, n)
		}
	}
}

// TestMigrateToDirectAndFallBack runs the whole mechanism with real
// quic-go on loopback: the viewer connects through a forwarder (the relay),
// the two sides exchange candidates and punch, the viewer migrates the
// live connection to the direct path while frames flow, and when the
// direct path is black-holed it falls back to the forwarder within 1 s.
func TestMigrateToDirectAndFallBack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cam := startCamera(t, ctx)
	relay := forwarder(t, addrOf(cam.hole))

	vsock := listenUDP(t)
	dctx, dcancel := context.WithTimeout(ctx, testTimeout)
	defer dcancel()
	mux, vtr, conn := dialThroughRelay(t, dctx, vsock, relay, nil)
	connected := time.Now()
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	if got := conn.RemoteAddr().(*net.UDPAddr).AddrPort(); got != relay {
		t.Fatalf("dialled %v, want the relay %v", got, relay)
	}

	sc, err := stream.NewClient(dctx, conn, "nat-test-viewer")
	if err != nil {
		t.Fatal(err)
	}
	fc := &frameCheck{tick: make(chan struct{}, 1)}
	readErr := make(chan error, 1)
	go func() { readErr <- fc.run(ctx, sc) }()

	var learner *discovery.Learner
	cl, events := startClient(t, dctx, conn, mux, vtr, relay, vsock, func(c *traversal.ClientConfig) {
		learner = discovery.NewLearner(c.Candidates, "camera")
		c.Learner = learner
		c.RetryMin = 30 * time.Second // one fallback is what this test checks
	})
	defer cl.Close()

	direct := waitEvent(t, events, traversal.EventDirect)
	timeToDirect := direct.At.Sub(connected)
	if direct.Addr != addrOf(cam.hole) {
		t.Fatalf("direct to %v, want the camera's socket %v", direct.Addr, addrOf(cam.hole))
	}
	// The camera now sees the viewer's own socket, not the forwarder.
	fc.waitFrames(t, 50)
	if got := conn.RemoteAddr().(*net.UDPAddr).AddrPort(); got != relay {
		t.Fatalf("client remote address changed to %v: quic-go must keep the dialled one", got)
	}
	srv := <-cam.server
	if srv.Stats().PunchesSent == 0 {
		t.Fatalf("camera sent no punch packets: %+v", srv.Stats())
	}
	// The camera's connection now comes from the viewer's own socket, and
	// its OBSERVED_ADDRESS report on the new path says so.
	camConn := <-cam.conn
	eventually(t, "camera follows the viewer to the direct path", func() bool {
		return camConn.RemoteAddr().(*net.UDPAddr).AddrPort() == addrOf(vsock)
	})
	eventually(t, "viewer learns its address on the direct path", func() bool {
		obs, _ := learner.Current()
		return obs == addrOf(vsock)
	})
	frames, lost := fc.counts()
	if lost != 0 {
		t.Fatalf("%d frames lost around the switch to direct", lost)
	}

	// Kill the direct path.
	cam.hole.block(addrOf(vsock))
	killed := time.Now()
	back := waitEvent(t, events, traversal.EventRelay)
	fallback := back.At.Sub(killed)
	if fallback >= time.Second {
		t.Fatalf("fell back after %v, want < 1 s", fallback)
	}
	fc.waitFrames(t, 50)
	eventually(t, "camera follows the viewer back to the relay", func() bool {
		return camConn.RemoteAddr().(*net.UDPAddr).AddrPort() == relay
	})
	frames2, lost2 := fc.counts()
	if conn.Context().Err() != nil {
		t.Fatal("connection lost")
	}
	t.Logf("time to direct %v; frames before kill %d lost %d; fallback %v; frames after %d lost %d (stale-group resets while the path was dead)",
		timeToDirect, frames, lost, fallback, frames2, lost2)
	select {
	case err := <-readErr:
		t.Fatalf("frame reader stopped: %v", err)
	default:
	}
}

// symmetricMapping stands in for the mapping a symmetric NAT gives the
// camera toward one viewer: a socket of its own that carries the camera's
// packets to the viewer and the viewer's to the camera.
func symmetricMapping(tb testing.TB, camera, viewer netip.AddrPort) netip.AddrPort {
	c := listenUDP(tb)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			to := camera
			if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) == camera {
				to = viewer
			}
			c.WriteToUDPAddrPort(buf[:n], to)
		}
	}()
	return addrOf(c)
}

// TestPeerReflexiveCandidate: the camera's advertised address leads
// nowhere (behind a symmetric NAT it is the relay's mapping) and its
// punches reach the viewer from another port. The viewer learns that port
// from the punch (Client.HeardPacket) and goes direct over it.
func TestPeerReflexiveCandidate(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cam := startCamera(t, ctx)
	relay := forwarder(t, addrOf(cam.hole))
	vsock := listenUDP(t)
	mapping := symmetricMapping(t, addrOf(cam.hole), addrOf(vsock))
	punchVia := func(b []byte, _ net.Addr) (int, error) {
		return cam.tr.WriteTo(b, net.UDPAddrFromAddrPort(mapping))
	}
	cam.punch.Store(&punchVia)
	dead := listenUDP(t) // never answers
	cam.cands.Remove(addrOf(cam.hole), "host")
	cam.cands.Add(addrOf(dead), candidate.Reflexive, "relay")

	var client atomic.Pointer[traversal.Client]
	dctx, dcancel := context.WithTimeout(ctx, testTimeout)
	defer dcancel()
	mux, vtr, conn := dialThroughRelay(t, dctx, vsock, relay, func(b []byte, from netip.AddrPort) {
		if c := client.Load(); c != nil {
			c.HeardPacket(b, from)
		}
	})
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	cl, events := startClient(t, dctx, conn, mux, vtr, relay, vsock, nil)
	client.Store(cl)
	defer cl.Close()
	direct := waitEvent(t, events, traversal.EventDirect)
	if direct.Addr != mapping {
		t.Fatalf("direct to %v, want the port the punches came from %v", direct.Addr, mapping)
	}
	// The first round normally succeeds; a probe lost on a loaded host is
	// retried once the next round's punches arrive, so two rounds pass too.
	if st := cl.Stats(); st.Rounds > 2 {
		t.Fatalf("took %d rounds, want the first (or the second): %+v", st.Rounds, st)
	}
}

func waitEvent(t *testing.T, events <-chan traversal.Event, kind traversal.EventKind) traversal.Event {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		select {
		case e := <-events:
			if e.Kind == kind {
				return e
			}
			t.Logf("event %v %v", e.Kind, e.Addr)
		case <-deadline:
			t.Fatalf("no %v event", kind)
		}
	}
}

// eventually polls cond, which depends on quic-go state with no channel to
// wait on, until it holds or the test deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(testTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out: %s", what)
		}
	}
}

// BenchmarkTimeToDirect measures, with real quic-go on loopback, the time
// from a connection established through the forwarder to the live
// connection running on the direct path (ADD_ADDRESS, PUNCH_ME_NOW, path
// validation, switch). Reported as ms-to-direct.
func BenchmarkTimeToDirect(b *testing.B) {
	var total time.Duration
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		cam := startCamera(b, ctx)
		relay := forwarder(b, addrOf(cam.hole))
		vsock := listenUDP(b)
		mux, vtr, conn := dialThroughRelay(b, ctx, vsock, relay, nil)
		connected := time.Now()
		cl, events := startClient(b, ctx, conn, mux, vtr, relay, vsock, nil)
		e := <-events
		if e.Kind != traversal.EventDirect {
			b.Fatalf("event %v", e.Kind)
		}
		total += e.At.Sub(connected)
		cl.Close()
		conn.CloseWithError(0, "")
		vtr.Close()
		mux.Close()
		cancel()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-direct")
}

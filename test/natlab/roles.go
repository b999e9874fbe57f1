//go:build linux

package natlab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/media"
	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/pathmux"
	"github.com/camagent/camagent/p2p/traversal"
	"github.com/camagent/camagent/stream"
)

// The synthetic video: 30 fps, a key frame every 30, sizes of a small
// low-bitrate H.264 stream (about 1 Mbit/s), so byte shares mean something.
const (
	FPS           = 30
	KeyEvery      = 30
	frameInterval = time.Second / FPS
	keyBytes      = 16000
	deltaBytes    = 3500
)

// registerEvery refreshes the camera's NAT mapping toward the relay, far
// inside Linux's 30 s timeout for unreplied UDP.
const registerEvery = time.Second

// Camera is the camera role: a QUIC server whose stream.Hub publishes
// numbered synthetic frames, with the camera side of NAT traversal on
// each connection, all on one UDP socket in its namespace.
type Camera struct {
	tr     *quic.Transport
	hub    *stream.Hub
	resp   *traversal.Responder
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	servers []*traversal.Server
}

// StartCamera starts the camera in namespace ns: it registers with relay,
// adds the reflexive address the relay observed to its host candidates
// and serves viewers until Close.
func StartCamera(ctx context.Context, ns string, relay Relay) (*Camera, error) {
	var udp *net.UDPConn
	var hosts []netip.AddrPort
	var prefixes []netip.Prefix
	err := InNamespace(ns, func() (err error) {
		if udp, err = net.ListenUDP("udp4", &net.UDPAddr{Port: CameraPort}); err != nil {
			return err
		}
		// Interface enumeration must run in the namespace too.
		hosts, prefixes, err = candidate.HostAddrs(CameraPort, candidate.HostOptions{})
		return err
	})
	if err != nil {
		if udp != nil {
			udp.Close()
		}
		return nil, err
	}
	tr := &quic.Transport{Conn: udp}
	tlsConf, err := serverTLS()
	if err != nil {
		tr.Close()
		return nil, err
	}
	ln, err := tr.Listen(tlsConf, &quic.Config{MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		tr.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	cam := &Camera{tr: tr, cancel: cancel, hub: stream.NewHub(stream.HubConfig{CameraName: "natlab"})}
	guard := traversal.NewGuard(traversal.GuardConfig{LocalPrefixes: prefixes})
	cam.resp = traversal.NewResponder(traversal.ResponderConfig{Read: tr.ReadNonQUICPacket, Write: tr.WriteTo, Guard: guard})
	cands := candidate.NewSet()
	for _, h := range hosts {
		cands.Add(h, candidate.Host, "host")
	}

	cam.wg.Add(3)
	go func() { defer cam.wg.Done(); cam.publish(ctx) }()
	go func() { defer cam.wg.Done(); cam.register(ctx, relay.Addr()) }()
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	reflexive, err := relay.CameraAddr(rctx)
	if err != nil {
		cam.wg.Done()
		cam.Close()
		return nil, err
	}
	cands.Add(reflexive, candidate.Reflexive, "relay")
	go func() {
		defer cam.wg.Done()
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			cam.wg.Add(1)
			go func() { defer cam.wg.Done(); cam.serve(ctx, conn, cands, guard, relay) }()
		}
	}()
	return cam, nil
}

// register sends RegisterPacket from the QUIC socket to the relay.
func (cam *Camera) register(ctx context.Context, relay netip.AddrPort) {
	t := time.NewTicker(registerEvery)
	defer t.Stop()
	for {
		cam.tr.WriteTo(RegisterPacket, net.UDPAddrFromAddrPort(relay))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (cam *Camera) publish(ctx context.Context) {
	cam.hub.SetTrack(media.Track{Codec: media.CodecH264, Width: 640, Height: 360, FPS: FPS,
		SPS: []byte{0x67, 0x42, 0xc0, 0x1f}, PPS: []byte{0x68, 0xce, 0x3c, 0x80}})
	t := time.NewTicker(frameInterval)
	defer t.Stop()
	for i := 0; ; i++ {
		key := i%KeyEvery == 0
		size, nal := deltaBytes, byte(0x41)
		if key {
			size, nal = keyBytes, 0x65
		}
		data := make([]byte, size)
		copy(data, []byte{0, 0, 0, 1, nal})
		// PTS numbers the frames: the viewer counts gaps in it.
		cam.hub.Publish(media.AccessUnit{Codec: media.CodecH264, Key: key,
			PTS: time.Duration(i) * frameInterval, Captured: time.Now(), Data: data})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serve runs one viewer connection: the hub's media streams, and NAT
// traversal on a bidirectional stream the camera opens (the agent uses
// its control stream; the frames are the same).
func (cam *Camera) serve(ctx context.Context, conn *quic.Conn, cands *candidate.Set, guard *traversal.Guard, relay Relay) {
	go cam.hub.Serve(ctx, conn, "viewer")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return
	}
	// No discovery.Reporter here: through the Forwarder this connection's
	// remote address is the relay's, which would be reported to the viewer
	// as its own. The relay tells the camera where the viewer is instead
	// (Observe), which is what lets the camera punch toward it.
	srv := traversal.NewServer(traversal.ServerConfig{
		Channel: natwire.NewStreamChannel(str), Candidates: cands,
		Punch: cam.tr.WriteTo, Guard: guard, Peer: conn.RemoteAddr, Logger: debugLogger("camera"),
	})
	if v, ok := relay.ViewerAddr(); ok {
		srv.Observe(v)
	}
	cam.mu.Lock()
	cam.servers = append(cam.servers, srv)
	cam.mu.Unlock()
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
	}
	srv.Close()
}

// ServerStats sums the traversal counters of every connection so far.
func (cam *Camera) ServerStats() traversal.ServerStats {
	cam.mu.Lock()
	defer cam.mu.Unlock()
	var sum traversal.ServerStats
	for _, s := range cam.servers {
		st := s.Stats()
		sum.PunchRequests += st.PunchRequests
		sum.PunchesSent += st.PunchesSent
		sum.Refused += st.Refused
		sum.Rounds += st.Rounds
	}
	return sum
}

// Close stops the camera and closes its socket.
func (cam *Camera) Close() error {
	cam.cancel()
	cam.resp.Close()
	cam.hub.Close()
	err := cam.tr.Close()
	cam.tr.Conn.Close()
	cam.wg.Wait()
	return err
}

func serverTLS() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{stream.ALPN}}, nil
}

// debugLogger logs the traversal state machines to stderr when
// NATLAB_DEBUG is set, and nothing otherwise.
func debugLogger(role string) *slog.Logger {
	if os.Getenv("NATLAB_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("role", role)
}

// countingConn counts the bytes the viewer's socket receives: the
// denominator of the relay share.
type countingConn struct {
	net.PacketConn
	n atomic.Uint64
}

func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(p)
	c.n.Add(uint64(n))
	return n, a, err
}

// FrameRecord is one received frame: its number and arrival time.
type FrameRecord struct {
	N  int
	At time.Time
}

// PathEvent is a traversal event with the byte counters at that moment.
type PathEvent struct {
	traversal.Event
	RelayBytes, ViewerBytes uint64
}

// Viewer is the viewer role: stream.Client through the relay plus the
// viewer side of NAT traversal, on one UDP socket in its namespace.
type Viewer struct {
	Connected time.Time

	sock   *countingConn
	mux    *pathmux.Socket
	tr     *quic.Transport
	conn   *quic.Conn
	client *traversal.Client
	relay  Relay
	cancel context.CancelFunc
	read   chan struct{}

	mu     sync.Mutex
	frames []FrameRecord
	events []PathEvent
	err    error
}

// StartViewer dials the camera through relay from namespace ns and
// starts reading frames and NAT traversal.
func StartViewer(ctx context.Context, ns string, relay Relay) (*Viewer, error) {
	var udp *net.UDPConn
	var hosts []netip.AddrPort
	var prefixes []netip.Prefix
	err := InNamespace(ns, func() (err error) {
		if udp, err = net.ListenUDP("udp4", &net.UDPAddr{Port: ViewerPort}); err != nil {
			return err
		}
		hosts, prefixes, err = candidate.HostAddrs(ViewerPort, candidate.HostOptions{})
		return err
	})
	if err != nil {
		if udp != nil {
			udp.Close()
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	v := &Viewer{sock: &countingConn{PacketConn: udp}, relay: relay, cancel: cancel}
	var client atomic.Pointer[traversal.Client]
	v.mux = pathmux.New(v.sock, func(b []byte, from netip.AddrPort) {
		if c := client.Load(); c != nil {
			c.HeardPacket(b, from)
		}
	})
	fail := func(err error) (*Viewer, error) {
		v.Close()
		return nil, err
	}
	relayAddr := relay.Addr()
	route, err := v.mux.Route(relayAddr, relayAddr)
	if err != nil {
		return fail(err)
	}
	v.tr = &quic.Transport{Conn: route}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	v.conn, err = v.tr.Dial(dctx, net.UDPAddrFromAddrPort(relayAddr),
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{stream.ALPN}}, // lab only: a throwaway certificate
		&quic.Config{MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		return fail(fmt.Errorf("dial through the relay: %w", err))
	}
	v.Connected = time.Now()
	sc, err := stream.NewClient(dctx, v.conn, "natlab-viewer")
	if err != nil {
		return fail(err)
	}
	v.read = make(chan struct{})
	go v.readFrames(ctx, sc)
	str, err := v.conn.AcceptStream(dctx)
	if err != nil {
		return fail(err)
	}
	own := candidate.NewSet()
	for _, h := range hosts {
		own.Add(h, candidate.Host, "host")
	}
	// The relay saw the viewer's first packet: that is its reflexive
	// address, which the camera may punch toward.
	if r, ok := relay.ViewerAddr(); ok {
		own.Add(r, candidate.Reflexive, "relay")
	}
	c, err := traversal.NewClient(traversal.ClientConfig{
		Conn: v.conn, Channel: natwire.NewStreamChannel(str), Socket: v.mux,
		RelayTransport: v.tr, Relay: relayAddr, Candidates: own, LocalPrefixes: prefixes,
		OnEvent: v.onEvent, Logger: debugLogger("viewer"),
	})
	if err != nil {
		return fail(err)
	}
	v.client = c
	client.Store(c)
	return v, nil
}

func (v *Viewer) onEvent(e traversal.Event) {
	pe := PathEvent{Event: e, RelayBytes: v.relay.ToViewerBytes(), ViewerBytes: v.sock.n.Load()}
	v.mu.Lock()
	v.events = append(v.events, pe)
	v.mu.Unlock()
}

func (v *Viewer) readFrames(ctx context.Context, sc *stream.Client) {
	defer close(v.read)
	for {
		f, err := sc.ReadFrame(ctx)
		if err != nil {
			v.mu.Lock()
			v.err = err
			v.mu.Unlock()
			return
		}
		v.mu.Lock()
		v.frames = append(v.frames, FrameRecord{N: int(f.PTS / frameInterval), At: f.Received})
		v.mu.Unlock()
	}
}

// Snapshot returns the frames and events so far, the byte counters now,
// and the reader's error if it stopped.
func (v *Viewer) Snapshot() (frames []FrameRecord, events []PathEvent, relayBytes, viewerBytes uint64, err error) {
	relayBytes, viewerBytes = v.relay.ToViewerBytes(), v.sock.n.Load()
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]FrameRecord(nil), v.frames...), append([]PathEvent(nil), v.events...), relayBytes, viewerBytes, v.err
}

// ClientStats are the traversal client's counters.
func (v *Viewer) ClientStats() traversal.ClientStats {
	if v.client == nil {
		return traversal.ClientStats{}
	}
	return v.client.Stats()
}

// Close ends the connection and closes the socket.
func (v *Viewer) Close() error {
	if v.client != nil {
		v.client.Close()
	}
	if v.conn != nil {
		v.conn.CloseWithError(0, "")
	}
	v.cancel()
	if v.tr != nil {
		v.tr.Close()
	}
	err := v.mux.Close()
	v.sock.Close()
	if v.read != nil {
		<-v.read
	}
	return err
}

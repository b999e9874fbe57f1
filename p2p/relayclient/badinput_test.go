package relayclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/camagent/camagent/p2p/masque/wire"
	"github.com/camagent/camagent/p2p/relayserver"
)

// rawRequest sends a bind request, changed by mutate, on a new connection.
func rawRequest(t *testing.T, ctx context.Context, rl *testRelay, mutate func(*http.Request)) (*http3.RequestStream, *http.Response) {
	t.Helper()
	qconn, err := quic.DialAddr(ctx, rl.url.Addr, rl.url.tlsConfig(nil), profile.QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qconn.CloseWithError(0, "") })
	cc := (&http3.Transport{EnableDatagrams: true}).NewClientConn(qconn)
	<-cc.ReceivedSettings()
	str, err := cc.OpenRequestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := bindRequest(Options{Relay: rl.url, Token: rl.Token})
	if mutate != nil {
		mutate(req)
	}
	if err := str.SendRequestHeader(req); err != nil {
		t.Fatal(err)
	}
	resp, err := str.ReadResponse()
	if err != nil {
		t.Fatal(err)
	}
	return str, resp
}

func TestWrongHeadersGetHTTPErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	tests := []struct {
		name   string
		mutate func(*http.Request)
		status int
	}{
		{"ok", nil, 200},
		{"no capsule protocol (optional, RFC 9297 section 3.4)", func(r *http.Request) { r.Header.Del(http3.CapsuleProtocolHeader) }, 200},
		{"capsule protocol not a boolean", func(r *http.Request) { r.Header.Set(http3.CapsuleProtocolHeader, "yes") }, 400},
		{"bind not a boolean", func(r *http.Request) { r.Header.Set(profile.HeaderBind, "yes") }, 400},
		{"bind with a target host", func(r *http.Request) {
			r.URL.Path, r.URL.RawPath = "/.well-known/masque/udp/192.0.2.1/*/", "/.well-known/masque/udp/192.0.2.1/%2A/"
		}, 400},
		{"wildcard without bind", func(r *http.Request) { r.Header.Del(profile.HeaderBind) }, 400},
		{"bad template", func(r *http.Request) { r.URL.Path, r.URL.RawPath = "/.well-known/masque/udp/x/", "" }, 400},
		{"wrong protocol", func(r *http.Request) { r.Proto = "connect-ip" }, 400},
		{"bad locator", func(r *http.Request) { r.Header.Set(profile.HeaderLocator, "zz") }, 400},
		{"no token", func(r *http.Request) { r.Header.Del("Authorization") }, 401},
		{"private target", func(r *http.Request) {
			r.Header.Del(profile.HeaderBind)
			r.URL.Path, r.URL.RawPath = "/.well-known/masque/udp/10.0.0.1/53/", ""
		}, 403},
		{"loopback target outside the test override", func(r *http.Request) {
			r.Header.Del(profile.HeaderBind)
			r.URL.Path, r.URL.RawPath = "/.well-known/masque/udp/127.0.0.2/53/", ""
		}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp := rawRequest(t, ctx, rl, tt.mutate)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

// TestBadCapsulesAbortOnlyTheirTunnel: a healthy tunnel keeps forwarding
// while others send malformed capsules and are reset with H3_MESSAGE_ERROR.
func TestBadCapsulesAbortOnlyTheirTunnel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	cam := startCamera(t)
	k := NewKeeper(KeeperConfig{Relays: []RelayURL{rl.url}, Identity: cam.id, Token: rl.Token, Mux: cam.mux, Locators: testLocators(cam.id)})
	go k.Run(ctx)
	waitRegistered(t, ctx, k)
	pub, err := Locate(ctx, rl.url.WithSecret(testSecret(cam.id, rl.url)), nil)
	if err != nil {
		t.Fatal(err)
	}
	viewer := dialViewer(t, ctx, cam, pub)
	roundTrip(t, viewer, 4096)

	bad := map[string][]byte{
		"odd context from client": wire.AppendCapsule(nil, wire.CapsuleCompressionAssign, wire.Assign{ContextID: 3}.Append(nil)),
		"context 0":               wire.AppendCapsule(nil, wire.CapsuleCompressionAssign, []byte{0, 0}),
		"bad ip version":          wire.AppendCapsule(nil, wire.CapsuleCompressionAssign, []byte{2, 5}),
		"oversized assign":        wire.AppendCapsule(nil, wire.CapsuleCompressionAssign, make([]byte, 100)),
		"ack never assigned":      wire.AppendCapsule(nil, wire.CapsuleCompressionAck, []byte{0x40, 0x40}),
		"close of context 0":      wire.AppendCapsule(nil, wire.CapsuleCompressionClose, []byte{0}),
		"second uncompressed": append(wire.AppendCapsule(nil, wire.CapsuleCompressionAssign, wire.Assign{ContextID: 2}.Append(nil)),
			wire.AppendCapsule(nil, wire.CapsuleCompressionAssign, wire.Assign{ContextID: 4}.Append(nil))...),
		"huge unknown capsule": wire.AppendCapsule(nil, 0x2a, make([]byte, 20000)),
	}
	for name, capsules := range bad {
		t.Run(name, func(t *testing.T) {
			str, resp := rawRequest(t, ctx, rl, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			// Unknown contexts and junk datagrams are dropped, not fatal.
			str.SendDatagram(wire.AppendCompressed(nil, 99, []byte("x")))
			str.SendDatagram([]byte{0x40})
			if _, err := str.Write(capsules); err != nil {
				t.Fatal(err)
			}
			str.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 256)
			for {
				_, err = str.Read(buf)
				if err != nil {
					break
				}
			}
			var se *quic.StreamError
			if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(http3.ErrCodeMessageError) {
				t.Fatalf("stream ended with %v, want H3_MESSAGE_ERROR", err)
			}
			roundTrip(t, viewer, 4096) // the healthy tunnel is undisturbed
		})
	}
	if rl.Server.Metrics().StreamErrors.Load() != uint64(len(bad)) {
		t.Fatalf("stream errors %d, want %d", rl.Server.Metrics().StreamErrors.Load(), len(bad))
	}
}

// TestFirewallMode: once the camera closes the uncompressed context, only
// peers with a compressed context get through (listen draft section 7).
func TestFirewallMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	cam := startCamera(t)
	c, err := Register(ctx, Options{Relay: rl.url, Identity: cam.id, Token: rl.Token})
	if err != nil {
		t.Fatal(err)
	}
	cam.mux.Add(c)
	viewer := dialViewer(t, ctx, cam, c.PublicAddr())
	roundTrip(t, viewer, 4096)
	// The relay's COMPRESSION_ASSIGN travels on the request stream, the
	// packets in datagrams: under load the round trip can finish before
	// the camera has read the capsule.
	var assigned int
	for wait := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c.mu.Lock()
		assigned = len(c.byPeer)
		c.mu.Unlock()
		if assigned != 0 || time.Now().After(wait) {
			break
		}
	}
	if assigned != 1 {
		t.Fatalf("relay assigned %d compressed contexts, want 1 for the viewer", assigned)
	}
	c.writeCapsule(wire.CapsuleCompressionClose, wire.AppendContextID(nil, uncompressedID))

	// The close capsule travels on its own; a stranger heard before the
	// relay processed it was legitimately given a context. So every try
	// comes from a new port: once the close is in, each one is a peer the
	// relay has never seen, and must be dropped.
	m := rl.Server.Metrics()
	deadline := time.Now().Add(5 * time.Second)
	for m.DropFirewall.Load() == 0 && time.Now().Before(deadline) {
		stranger, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		stranger.WriteTo([]byte("let me in"), net.UDPAddrFromAddrPort(c.PublicAddr()))
		stranger.Close()
		time.Sleep(20 * time.Millisecond)
	}
	if m.DropFirewall.Load() == 0 {
		t.Fatal("stranger's packets were not dropped in firewall mode")
	}
	roundTrip(t, viewer, 64<<10) // the viewer's compressed context still works
}

package relayserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/camagent/camagent/p2p/masque/wire"
)

// startPolicyRelay runs a relay on addr ("127.0.0.1:0" or "[::]:0") with
// cfg (identity, public IP and token filled in) until the test ends.
func startPolicyRelay(t *testing.T, addr string, cfg Config) (*Server, netip.AddrPort) {
	t.Helper()
	testtier.Slow(t, "a MASQUE relay over QUIC on loopback")
	id, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identity = id
	if !cfg.PublicIP.IsValid() {
		cfg.PublicIP = netip.MustParseAddr("127.0.0.1")
	}
	if cfg.Tokens == nil {
		cfg.Tokens = []string{"secret-token"}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(pc) }()
	t.Cleanup(func() { s.Close(); pc.Close(); <-done })
	return s, pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// h3Client is one QUIC connection to the relay, from local ("" for any).
func h3Client(t *testing.T, ctx context.Context, relay netip.AddrPort, local string) *http3.ClientConn {
	t.Helper()
	if local == "" {
		local = "127.0.0.1:0"
		if relay.Addr().Is6() && !relay.Addr().Is4In6() {
			local = "[::1]:0"
		}
	}
	pc, err := net.ListenPacket("udp", local)
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	t.Cleanup(func() { tr.Close(); pc.Close() })
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}}
	qconn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(relay), tlsConf, profile.QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qconn.CloseWithError(0, "") })
	cc := (&http3.Transport{EnableDatagrams: true}).NewClientConn(qconn)
	select {
	case <-cc.ReceivedSettings():
	case <-ctx.Done():
		t.Fatal("no SETTINGS")
	}
	return cc
}

// masqueRequest is an Extended CONNECT for connect-udp to host/port ("*"
// for bind), with the test token unless token is "".
func masqueRequest(relay netip.AddrPort, host, port, token string, bind bool) *http.Request {
	h := http.Header{}
	if bind {
		h.Set(profile.HeaderBind, "?1")
		h.Set(http3.CapsuleProtocolHeader, "?1")
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	esc := func(s string) string { return strings.NewReplacer("*", "%2A", ":", "%3A").Replace(s) }
	return &http.Request{
		Method: http.MethodConnect, Proto: "connect-udp", Host: relay.String(), Header: h,
		URL: &url.URL{Scheme: "https", Host: relay.String(),
			Path:    profile.MasquePrefix + host + "/" + port + "/",
			RawPath: profile.MasquePrefix + esc(host) + "/" + esc(port) + "/"},
	}
}

func send(t *testing.T, ctx context.Context, cc *http3.ClientConn, req *http.Request) (*http3.RequestStream, *http.Response) {
	t.Helper()
	str, err := cc.OpenRequestStream(ctx)
	if err != nil {
		t.Fatal(err)
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

// proxyStatusError is the error parameter of a Proxy-Status header.
func proxyStatusError(t *testing.T, h http.Header) string {
	t.Helper()
	l, err := httpsfv.UnmarshalList(h.Values("Proxy-Status"))
	if err != nil || len(l) != 1 {
		t.Fatalf("Proxy-Status %q: %v", h.Values("Proxy-Status"), err)
	}
	item := l[0].(httpsfv.Item)
	if item.Value != httpsfv.Token(proxyName) {
		t.Errorf("Proxy-Status names %v", item.Value)
	}
	e, _ := item.Params.Get("error")
	tok, _ := e.(httpsfv.Token)
	return string(tok)
}

// udpSink is a UDP socket that counts what reaches it ("the victim").
func udpSink(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// received reads what reaches c within d.
func received(c *net.UDPConn, d time.Duration) [][]byte {
	var out [][]byte
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(d))
	for {
		n, err := c.Read(buf)
		if err != nil {
			return out
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
}

// echoUDP answers every datagram with itself until the test ends.
func echoUDP(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	c := udpSink(t, addr)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestRefusalsCarryRFCHeaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, relay := startPolicyRelay(t, "127.0.0.1:0", Config{AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	cc := h3Client(t, ctx, relay, "")
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		perr   string
		header string // another header the answer must have, "Name: value"
	}{
		{"no token", func() *http.Request { return masqueRequest(relay, "*", "*", "", true) }, 401, proxyErrDenied,
			`Www-Authenticate: Bearer realm="camagent-relay"`},
		{"wrong token", func() *http.Request { return masqueRequest(relay, "*", "*", "nope", true) }, 401, proxyErrDenied, ""},
		{"wrong method", func() *http.Request {
			r := masqueRequest(relay, "*", "*", "secret-token", true)
			r.Method = http.MethodPost
			return r
		}, 405, proxyErrRequest, "Allow: CONNECT"},
		{"locate by POST", func() *http.Request {
			return &http.Request{Method: http.MethodPost, Host: relay.String(), Header: http.Header{},
				URL: &url.URL{Scheme: "https", Host: relay.String(), Path: profile.LocatePrefix + "00"}}
		}, 405, proxyErrRequest, "Allow: GET"},
		{"bad template", func() *http.Request { return masqueRequest(relay, "x", "", "secret-token", false) }, 400, proxyErrRequest, ""},
		{"private target", func() *http.Request { return masqueRequest(relay, "10.0.0.1", "53", "secret-token", false) }, 403,
			proxyErrDestinationIPProhibited, ""},
		{"metadata target", func() *http.Request { return masqueRequest(relay, "169.254.169.254", "80", "secret-token", false) }, 403,
			proxyErrDestinationIPProhibited, ""},
		{"loopback outside the override", func() *http.Request { return masqueRequest(relay, "127.0.0.2", "53", "secret-token", false) },
			403, proxyErrDestinationIPProhibited, ""},
		{"IPv4-mapped loopback", func() *http.Request {
			return masqueRequest(relay, "::ffff:127.0.0.1", "53", "secret-token", false)
		}, 403, proxyErrDestinationIPProhibited, ""},
		{"NAT64 loopback", func() *http.Request { return masqueRequest(relay, "64:ff9b::7f00:1", "53", "secret-token", false) }, 403,
			proxyErrDestinationIPProhibited, ""},
		{"unresolvable name", func() *http.Request {
			return masqueRequest(relay, "no-such-host.invalid", "53", "secret-token", false)
		}, 502, proxyErrDNS, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp := send(t, ctx, cc, tt.req())
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := proxyStatusError(t, resp.Header); got != tt.perr {
				t.Errorf("Proxy-Status error %q, want %q (%s)", got, tt.perr, resp.Header.Get("Proxy-Status"))
			}
			if tt.header != "" {
				name, value, _ := strings.Cut(tt.header, ": ")
				if got := resp.Header.Get(name); got != value {
					t.Errorf("%s: %q, want %q", name, got, value)
				}
			}
		})
	}
}

// TestConnectUDPWithoutCapsuleProtocol: RFC 9297 makes the header
// optional; datagrams go through both as QUIC DATAGRAM frames and as
// DATAGRAM capsules on the stream (RFC 9297 section 3.5).
func TestConnectUDPWithoutCapsuleProtocol(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, relay := startPolicyRelay(t, "127.0.0.1:0", Config{AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	echo := echoUDP(t, "127.0.0.1:0")
	cc := h3Client(t, ctx, relay, "")
	str, resp := send(t, ctx, cc, masqueRequest(relay, "127.0.0.1", fmt.Sprint(echo.Port()), "secret-token", false))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if s.ConnectSockets() != 1 {
		t.Fatalf("%d CONNECT-UDP sockets counted", s.ConnectSockets())
	}
	want := []byte("through a QUIC DATAGRAM frame")
	str.SendDatagram(wire.AppendCompressed(nil, 0, want))
	d, err := str.ReceiveDatagram(ctx)
	if err != nil || !bytes.Equal(d, wire.AppendCompressed(nil, 0, want)) {
		t.Fatalf("echo %q, %v", d, err)
	}
	want = []byte("through a DATAGRAM capsule")
	if _, err := str.Write(wire.AppendCapsule(nil, capsuleDatagram, wire.AppendCompressed(nil, 0, want))); err != nil {
		t.Fatal(err)
	}
	d, err = str.ReceiveDatagram(ctx)
	if err != nil || !bytes.Equal(d, wire.AppendCompressed(nil, 0, want)) {
		t.Fatalf("echo of the capsule %q, %v", d, err)
	}
	// Close ends CONNECT-UDP sockets too.
	s.Close()
	str.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := str.Read(make([]byte, 16)); err == nil {
		t.Fatal("stream still open after Close")
	}
	if s.ConnectSockets() != 0 {
		t.Fatalf("%d CONNECT-UDP sockets after Close", s.ConnectSockets())
	}
}

// TestLimitsPerIdentityAcrossConnections: a second QUIC connection, or
// CONNECT-UDP instead of bind, does not get past the token's limit.
func TestLimitsPerIdentityAcrossConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, relay := startPolicyRelay(t, "127.0.0.1:0", Config{MaxPerIdentity: 3, MaxPerConn: 2, Tokens: []string{"secret-token", "other-token"},
		AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	echo := echoUDP(t, "127.0.0.1:0")
	statuses := func(cc *http3.ClientConn, n int, token string, bind bool) []int {
		var out []int
		for range n {
			host, port := "*", "*"
			if !bind {
				host, port = "127.0.0.1", fmt.Sprint(echo.Port())
			}
			_, resp := send(t, ctx, cc, masqueRequest(relay, host, port, token, bind))
			out = append(out, resp.StatusCode)
			if resp.StatusCode == 429 && proxyStatusError(t, resp.Header) != proxyErrLimit {
				t.Errorf("429 with Proxy-Status %q", resp.Header.Get("Proxy-Status"))
			}
		}
		return out
	}
	a, b := h3Client(t, ctx, relay, ""), h3Client(t, ctx, relay, "")
	got := fmt.Sprint(statuses(a, 2, "secret-token", true), statuses(b, 1, "secret-token", false), statuses(b, 1, "secret-token", true),
		statuses(h3Client(t, ctx, relay, ""), 1, "secret-token", false))
	if want := "[200 200] [200] [429] [429]"; got != want {
		t.Fatalf("statuses %s, want %s", got, want)
	}
	if s.Registrations() != 2 || s.ConnectSockets() != 1 {
		t.Fatalf("%d registrations, %d sockets", s.Registrations(), s.ConnectSockets())
	}
	// Another token is another identity (and the same source prefix,
	// whose limit is higher).
	if got := fmt.Sprint(statuses(h3Client(t, ctx, relay, ""), 1, "other-token", true)); got != "[200]" {
		t.Fatalf("other token: %s", got)
	}
}

// TestBindPolicy: a registration's client cannot open a context to, or
// send uncompressed datagrams to, a refused target; the victim hears
// nothing, and an admitted target still works.
func TestBindPolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, relay := startPolicyRelay(t, "127.0.0.1:0", Config{AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	victim := udpSink(t, "127.0.0.2:0")
	friend := udpSink(t, "127.0.0.1:0")
	vap := victim.LocalAddr().(*net.UDPAddr).AddrPort()
	fap := friend.LocalAddr().(*net.UDPAddr).AddrPort()
	cc := h3Client(t, ctx, relay, "")
	str, resp := send(t, ctx, cc, masqueRequest(relay, "*", "*", "secret-token", true))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	w := func(ct wire.CapsuleType, v []byte) {
		if _, err := str.Write(wire.AppendCapsule(nil, ct, v)); err != nil {
			t.Fatal(err)
		}
	}
	w(wire.CapsuleCompressionAssign, wire.Assign{ContextID: 2}.Append(nil))
	w(wire.CapsuleCompressionAssign, wire.Assign{ContextID: 4, Target: vap}.Append(nil))
	w(wire.CapsuleCompressionAssign, wire.Assign{ContextID: 6, Target: fap}.Append(nil))
	p := http3.NewCapsuleParser(str)
	got := map[uint64]wire.CapsuleType{}
	for len(got) < 3 {
		typ, r, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		v := make([]byte, r.Remaining())
		r.Read(v)
		id, err := wire.ParseContextCapsule(v)
		if err != nil {
			t.Fatal(err)
		}
		got[id] = wire.CapsuleType(typ)
	}
	if got[2] != wire.CapsuleCompressionAck || got[4] != wire.CapsuleCompressionClose || got[6] != wire.CapsuleCompressionAck {
		t.Fatalf("answers %v, want ACK for 2 and 6, CLOSE for 4", got)
	}
	for range 10 {
		str.SendDatagram(wire.AppendUncompressed(nil, 2, vap, []byte("uncompressed to the victim")))
		str.SendDatagram(wire.AppendCompressed(nil, 4, []byte("in the refused context")))
		str.SendDatagram(wire.AppendUncompressed(nil, 2, netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.2"), vap.Port()),
			[]byte("mapped")))
		str.SendDatagram(wire.AppendCompressed(nil, 6, []byte("to a friend")))
	}
	if n := len(received(victim, 300*time.Millisecond)); n != 0 {
		t.Fatalf("%d datagrams reached the victim", n)
	}
	// A DATAGRAM capsule on the stream is forwarded like a QUIC DATAGRAM
	// (RFC 9297 section 3.5).
	w(capsuleDatagram, wire.AppendCompressed(nil, 6, []byte("in a DATAGRAM capsule")))
	got6 := received(friend, 300*time.Millisecond)
	if len(got6) == 0 {
		t.Fatal("nothing reached the admitted target")
	}
	if !slices.ContainsFunc(got6, func(b []byte) bool { return string(b) == "in a DATAGRAM capsule" }) {
		t.Fatal("the DATAGRAM capsule was not forwarded")
	}
	// A packet from a refused source (127.0.0.2 is loopback outside the
	// override) to the registration's public socket is dropped: no
	// context, nothing to the client.
	pub, err := profile.ParsePublicAddress(resp.Header)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Metrics().DropTarget.Load()
	for range 5 {
		victim.WriteToUDPAddrPort([]byte("from a refused source"), pub[0])
	}
	dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	for {
		d, err := str.ReceiveDatagram(dctx)
		if err != nil {
			break
		}
		if bytes.Contains(d, []byte("from a refused source")) {
			t.Fatal("a packet from a refused source reached the client")
		}
	}
	dcancel()
	if got := s.Metrics().DropTarget.Load() - before; got < 5 {
		t.Fatalf("%d packets from the refused source counted as target drops, want 5", got)
	}
	if s.Metrics().DropTarget.Load() == 0 || s.Metrics().ContextsRefused.Load() != 1 { // datagrams may be lost on the way
		t.Fatalf("target drops %d, refused contexts %d", s.Metrics().DropTarget.Load(), s.Metrics().ContextsRefused.Load())
	}
}

// TestLocateLimitIsPerSource: one source prefix flooding locates is
// limited; another one's locate is still answered.
func TestLocateLimitIsPerSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, relay := startPolicyRelay(t, "[::]:0", Config{LocateRate: 5})
	locate := func(cc *http3.ClientConn) int {
		_, resp := send(t, ctx, cc, &http.Request{Method: http.MethodGet, Host: relay.String(), Header: http.Header{},
			URL: &url.URL{Scheme: "https", Host: relay.String(), Path: profile.LocatePrefix + strings.Repeat("00", 32)}})
		return resp.StatusCode
	}
	v4 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), relay.Port())
	v6 := netip.AddrPortFrom(netip.MustParseAddr("::1"), relay.Port())
	flood := h3Client(t, ctx, v4, "127.0.0.1:0")
	limited := 0
	for range 50 {
		if locate(flood) == 429 {
			limited++
		}
	}
	if limited < 30 {
		t.Fatalf("only %d of 50 locates limited", limited)
	}
	other := h3Client(t, ctx, v6, "[::1]:0")
	if st := locate(other); st != 404 {
		t.Fatalf("another source's locate: %d, want 404", st)
	}
}

func TestPrefixLimiterIsBounded(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := newPrefixLimiter(1, 1, func() time.Time { return now })
	l.size = 100
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		if !l.allow(a) {
			t.Fatalf("first request of %v limited", a)
		}
	}
	if l.len() != 100 {
		t.Fatalf("%d entries, want 100", l.len())
	}
	a := netip.MustParseAddr("10.3.231.1") // the last one, still held
	if l.allow(a) {
		t.Fatal("second request within the burst of 1 allowed")
	}
	// Same /24, another address: same bucket.
	if l.allow(netip.MustParseAddr("10.3.231.200")) {
		t.Fatal("another address of the same /24 has its own bucket")
	}
	// IPv6: the /56 is one bucket, the /48 holds 16 /56s' worth.
	l = newPrefixLimiter(1, 1, func() time.Time { return now })
	if !l.allow(netip.MustParseAddr("2001:db8:1:100::1")) || l.allow(netip.MustParseAddr("2001:db8:1:1ff::2")) {
		t.Fatal("a /56 is not one bucket")
	}
	n := 0
	for i := range 64 {
		if l.allow(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, byte(i + 2)})) {
			n++
		}
	}
	if n != 15 {
		t.Fatalf("%d more /56s of one /48 allowed, want 15 (the /48's burst of 16 less the first)", n)
	}
}

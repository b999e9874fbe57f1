package attack

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/camagent/camagent/p2p/masque/wire"
)

// Attacks on the relay as an open proxy (issue 11, found 1, 4, 5): a
// token holder aims the relay's UDP at the relay's own host and the
// network behind it, an outsider floods locates, a token holder takes
// every slot with more connections or with CONNECT-UDP. The relay runs as
// `camagent relay` on loopback with the override the labs use
// (documentation ranges admitted as targets); loopback and everything
// else special-purpose must stay refused. Helpers here are prefixed rl
// (the package is shared with the other attack files).

const rlToken = "attack-token"

// rlRelay is a running `camagent relay`.
type rlRelay struct {
	proc    *proc
	addr    netip.AddrPort // its QUIC port on 127.0.0.1
	metrics string         // its metrics URL
}

// rlFreeTCP picks a free TCP port on loopback for the metrics server.
func rlFreeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// rlDocOverride is the labs' override: documentation ranges as targets.
// The host's own non-loopback addresses' /24s are added too, to show that
// an override covering the relay's own address does not admit it.
func rlDocOverride() []string {
	args := []string{"--allow-target", "203.0.113.0/24", "--allow-target", "198.51.100.0/24"}
	for _, ip := range rlHostAddrs() {
		if ip.Is4() {
			p, _ := ip.Prefix(24)
			args = append(args, "--allow-target", p.String())
		}
	}
	return args
}

// rlHostAddrs are the host's non-loopback, non-link-local addresses.
func rlHostAddrs() []netip.Addr {
	var out []netip.Addr
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ip = ip.Unmap()
				if !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
					out = append(out, ip)
				}
			}
		}
	}
	return out
}

// rlStart runs a relay listening on every address (so that IPv4 and IPv6
// clients are two sources) with registration sockets on 127.0.0.1.
func rlStart(t *testing.T, extra ...string) *rlRelay {
	t.Helper()
	metrics := rlFreeTCP(t)
	args := append([]string{"relay", "--listen", "[::]:0", "--public-ip", "127.0.0.1", "--state-dir", t.TempDir(),
		"--token", rlToken, "--metrics", metrics, "--log-level", "debug"}, extra...)
	p := startProc(t, nil, args...)
	m := p.waitLine(t, regexp.MustCompile(`relay url: https://127\.0\.0\.1:(\d+)/`), 10*time.Second)
	port, _ := strconv.Atoi(m[1])
	return &rlRelay{proc: p, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), metrics: "http://" + metrics + "/metrics"}
}

// metric reads one sample of the relay's metrics, e.g.
// `camagent_relay_drops_total{reason="target"}`.
func (r *rlRelay) metric(t *testing.T, name string) int {
	t.Helper()
	resp, err := http.Get(r.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// rlDial opens an HTTP/3 connection to the relay at addr from a new socket.
func rlDial(t *testing.T, ctx context.Context, addr netip.AddrPort) *http3.ClientConn {
	t.Helper()
	local := "127.0.0.1:0"
	if addr.Addr().Is6() {
		local = "[::1]:0"
	}
	pc, err := net.ListenPacket("udp", local)
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	t.Cleanup(func() { tr.Close(); pc.Close() })
	qconn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(addr),
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}}, profile.QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qconn.CloseWithError(0, "") })
	cc := (&http3.Transport{EnableDatagrams: true}).NewClientConn(qconn)
	select {
	case <-cc.ReceivedSettings():
	case <-ctx.Done():
		t.Fatal("no SETTINGS from the relay")
	}
	return cc
}

// rlRequest sends an Extended CONNECT for connect-udp to host and port
// ("*" "*" with bind for a registration) or any other request.
func rlRequest(t *testing.T, ctx context.Context, cc *http3.ClientConn, req *http.Request) (*http3.RequestStream, *http.Response) {
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

func rlConnectUDP(relay netip.AddrPort, host, port string, bind bool) *http.Request {
	h := http.Header{"Authorization": {"Bearer " + rlToken}, http3.CapsuleProtocolHeader: {"?1"}}
	if bind {
		h.Set(profile.HeaderBind, "?1")
	}
	esc := strings.NewReplacer("*", "%2A", ":", "%3A").Replace
	return &http.Request{Method: http.MethodConnect, Proto: "connect-udp", Host: relay.String(), Header: h,
		URL: &url.URL{Scheme: "https", Host: relay.String(), Path: profile.MasquePrefix + host + "/" + port + "/",
			RawPath: profile.MasquePrefix + esc(host) + "/" + esc(port) + "/"}}
}

func rlLocate(relay netip.AddrPort) *http.Request {
	return &http.Request{Method: http.MethodGet, Host: relay.String(), Header: http.Header{},
		URL: &url.URL{Scheme: "https", Host: relay.String(), Path: profile.LocatePrefix + strings.Repeat("ab", 32)}}
}

// rlProxyError is the RFC 9209 error type in a Proxy-Status header.
func rlProxyError(h http.Header) string {
	l, err := httpsfv.UnmarshalList(h.Values("Proxy-Status"))
	if err != nil || len(l) == 0 {
		return ""
	}
	item, ok := l[0].(httpsfv.Item)
	if !ok {
		return ""
	}
	e, _ := item.Params.Get("error")
	tok, _ := e.(httpsfv.Token)
	return string(tok)
}

// rlVictim is a UDP socket standing for a service the relay must not
// reach; it counts what arrives.
type rlVictim struct {
	conn *net.UDPConn
}

func rlListenVictim(t *testing.T, ip netip.Addr) (*rlVictim, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rlVictim{conn: c}, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// count reads for d and returns how many datagrams arrived.
func (v *rlVictim) count(d time.Duration) int {
	n := 0
	buf := make([]byte, 2048)
	v.conn.SetReadDeadline(time.Now().Add(d))
	for {
		if _, err := v.conn.Read(buf); err != nil {
			return n
		}
		n++
	}
}

// rlTarget is one address an attacker aims the relay at; victim is set
// when something on this host listens there.
type rlTarget struct {
	name   string
	ap     netip.AddrPort
	victim *rlVictim
}

func rlTargets(t *testing.T) []rlTarget {
	v1, ap1 := rlListenVictim(t, netip.MustParseAddr("127.0.0.1"))
	out := []rlTarget{
		{"127.0.0.1", ap1, v1},
		{"::ffff:127.0.0.1", netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), ap1.Port()), v1},
	}
	if hosts := rlHostAddrs(); len(hosts) > 0 && hosts[0].Is4() {
		v, ap := rlListenVictim(t, hosts[0])
		out = append(out, rlTarget{"relay's own IP " + hosts[0].String(), ap, v})
	}
	for _, s := range []string{"10.1.2.3:53", "169.254.169.254:80", "100.100.100.200:80", "198.18.0.1:53", "240.0.0.1:53",
		"[64:ff9b::7f00:1]:53", "[2002:7f00:1::1]:53"} {
		ap := netip.MustParseAddrPort(s)
		out = append(out, rlTarget{ap.Addr().String(), ap, nil})
	}
	return out
}

// TestRelay runs the relay attacks.
func TestRelay(t *testing.T) {
	camagentBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := rlStart(t, rlDocOverride()...)
	targets := rlTargets(t)

	for _, tg := range targets {
		t.Run("bind datagrams to "+tg.name, func(t *testing.T) { rlBindAttack(t, ctx, r, tg) })
	}
	for _, tg := range targets {
		t.Run("CONNECT-UDP to "+tg.name, func(t *testing.T) { rlConnectAttack(t, ctx, r, tg) })
	}
	t.Run("locate flood from one source", func(t *testing.T) { rlLocateFlood(t, ctx, r) })
	t.Run("second connection past the per-token limit", func(t *testing.T) { rlSecondConnection(t, ctx) })
	t.Run("CONNECT-UDP sockets uncounted, unclosed, unlimited", func(t *testing.T) { rlConnectSockets(t, ctx) })
}

// rlBindAttack registers, then aims a compression context and uncompressed
// datagrams at the target.
func rlBindAttack(t *testing.T, ctx context.Context, r *rlRelay, tg rlTarget) {
	cc := rlDial(t, ctx, r.addr)
	str, resp := rlRequest(t, ctx, cc, rlConnectUDP(r.addr, "*", "*", true))
	if resp.StatusCode != 200 {
		t.Fatalf("registration: %d", resp.StatusCode)
	}
	capsule := func(ct wire.CapsuleType, v []byte) {
		if _, err := str.Write(wire.AppendCapsule(nil, ct, v)); err != nil {
			t.Fatal(err)
		}
	}
	// Uncompressed context 2, the attacked target in context 4, and a
	// documentation address the override admits in context 6 (to show the
	// registration works and the refusal is the policy's).
	control := netip.MustParseAddrPort("198.51.100.7:9")
	capsule(wire.CapsuleCompressionAssign, wire.Assign{ContextID: 2}.Append(nil))
	capsule(wire.CapsuleCompressionAssign, wire.Assign{ContextID: 4, Target: tg.ap}.Append(nil))
	capsule(wire.CapsuleCompressionAssign, wire.Assign{ContextID: 6, Target: control}.Append(nil))
	answers := map[uint64]wire.CapsuleType{}
	p := http3.NewCapsuleParser(str)
	str.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(answers) < 3 {
		typ, cr, err := p.Next()
		if err != nil {
			t.Fatalf("reading the relay's capsules: %v (answers so far %v)", err, answers)
		}
		v := make([]byte, cr.Remaining())
		if _, err := cr.Read(v); err != nil && len(v) > 0 {
			t.Fatal(err)
		}
		if id, err := wire.ParseContextCapsule(v); err == nil {
			answers[id] = wire.CapsuleType(typ)
		}
	}
	dropsBefore := r.metric(t, `camagent_relay_drops_total{reason="target"}`)
	const n = 50
	for i := range n {
		str.SendDatagram(wire.AppendUncompressed(nil, 2, tg.ap, []byte(fmt.Sprintf("attack %d", i))))
		str.SendDatagram(wire.AppendCompressed(nil, 4, []byte("attack in the refused context")))
		if i%10 == 9 {
			time.Sleep(5 * time.Millisecond) // stay under the datagram queue's size
		}
	}
	reached := 0
	if tg.victim != nil {
		reached = tg.victim.count(500 * time.Millisecond)
	} else {
		time.Sleep(300 * time.Millisecond)
	}
	drops := r.metric(t, `camagent_relay_drops_total{reason="target"}`) - dropsBefore
	name := func(ct wire.CapsuleType) string {
		switch ct {
		case wire.CapsuleCompressionAck:
			return "COMPRESSION_ACK"
		case wire.CapsuleCompressionClose:
			return "COMPRESSION_CLOSE"
		}
		return fmt.Sprintf("capsule 0x%x", uint64(ct))
	}
	where := "not routable from the test"
	if tg.victim != nil {
		where = fmt.Sprintf("%d of them reached a listener at %s", reached, tg.ap)
	}
	refused := answers[4] == wire.CapsuleCompressionClose && reached == 0 && drops > 0 && answers[6] == wire.CapsuleCompressionAck
	report(t, refused, "%s for ctx 4 (%s); %d uncompressed datagrams to %s: %d counted as target drops, %s; control ctx 6 to %s got %s",
		name(answers[4]), tg.ap, n, tg.ap, drops, where, control, name(answers[6]))
}

// rlConnectAttack asks for plain CONNECT-UDP to the target.
func rlConnectAttack(t *testing.T, ctx context.Context, r *rlRelay, tg rlTarget) {
	cc := rlDial(t, ctx, r.addr)
	str, resp := rlRequest(t, ctx, cc, rlConnectUDP(r.addr, tg.ap.Addr().String(), strconv.Itoa(int(tg.ap.Port())), false))
	reached := 0
	if resp.StatusCode == 200 {
		for range 20 {
			str.SendDatagram(wire.AppendCompressed(nil, 0, []byte("attack")))
		}
	}
	if tg.victim != nil {
		reached = tg.victim.count(300 * time.Millisecond)
	}
	perr := rlProxyError(resp.Header)
	report(t, resp.StatusCode == 403 && perr == "destination_ip_prohibited" && reached == 0,
		"%d, Proxy-Status error=%s (%s); %d datagrams reached %s", resp.StatusCode, perr, resp.Header.Get("Proxy-Status"), reached, tg.ap)
}

// rlLocateFlood: one source floods locates; another source's locate is
// still answered (404 for an unknown secret, not 429).
func rlLocateFlood(t *testing.T, ctx context.Context, r *rlRelay) {
	flood := rlDial(t, ctx, r.addr)
	limited, total := 0, 0
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && total < 400 {
		_, resp := rlRequest(t, ctx, flood, rlLocate(r.addr))
		total++
		if resp.StatusCode == 429 {
			limited++
		}
	}
	v6 := netip.AddrPortFrom(netip.IPv6Loopback(), r.addr.Port())
	other := rlDial(t, ctx, v6)
	statuses := map[int]int{}
	for range 5 {
		_, resp := rlRequest(t, ctx, other, rlLocate(v6))
		statuses[resp.StatusCode]++
	}
	report(t, limited > 0 && statuses[404] == 5,
		"flood from 127.0.0.1: %d of %d locates got 429; meanwhile 5 locates from ::1 got %v", limited, total, statuses)
}

// rlSecondConnection: the per-token limit holds across QUIC connections.
func rlSecondConnection(t *testing.T, ctx context.Context) {
	r := rlStart(t, "--max-per-identity", "3")
	a, b := rlDial(t, ctx, r.addr), rlDial(t, ctx, r.addr)
	var got []string
	for i, cc := range []*http3.ClientConn{a, a, b, b} {
		_, resp := rlRequest(t, ctx, cc, rlConnectUDP(r.addr, "*", "*", true))
		got = append(got, fmt.Sprintf("conn %c: %d %s", "aabb"[i], resp.StatusCode, rlProxyError(resp.Header)))
	}
	regs := r.metric(t, "camagent_relay_registrations")
	refused := strings.HasPrefix(got[3], "conn b: 429 connection_limit_reached") && regs == 3
	report(t, refused, "token limit 3: %s; relay holds %d registrations", strings.Join(got, "; "), regs)
}

// rlConnectSockets: CONNECT-UDP sockets count toward the limits, are rate
// limited from the target's side, and end when the relay shuts down.
func rlConnectSockets(t *testing.T, ctx context.Context) {
	// A loopback address the override names is the target here: the
	// override admits only what it lists.
	target, tap := rlListenVictim(t, netip.MustParseAddr("127.0.0.3"))
	r := rlStart(t, "--allow-target", "127.0.0.3/32", "--max-registrations", "2", "--datagram-rate", "100", "--datagram-burst", "10")
	cc := rlDial(t, ctx, r.addr)
	var strs []*http3.RequestStream
	var got []int
	for range 2 {
		str, resp := rlRequest(t, ctx, cc, rlConnectUDP(r.addr, "127.0.0.3", strconv.Itoa(int(tap.Port())), false))
		got = append(got, resp.StatusCode)
		strs = append(strs, str)
	}
	_, third := rlRequest(t, ctx, rlDial(t, ctx, r.addr), rlConnectUDP(r.addr, "127.0.0.3", strconv.Itoa(int(tap.Port())), false))
	_, bind := rlRequest(t, ctx, rlDial(t, ctx, r.addr), rlConnectUDP(r.addr, "*", "*", true))
	// Flood from the target back through the first socket.
	strs[0].SendDatagram(wire.AppendCompressed(nil, 0, []byte("hello")))
	buf := make([]byte, 64)
	target.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, relaySock, err := target.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("nothing from the relay's socket: %v", err)
	}
	start := time.Now()
	for range 2000 {
		target.conn.WriteToUDPAddrPort([]byte("flood"), relaySock)
	}
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	delivered := 0
	for {
		if _, err := strs[0].ReceiveDatagram(rctx); err != nil {
			break
		}
		delivered++
	}
	rcancel()
	allowed := 10 + int(100*time.Since(start).Seconds()) + 5
	// Shut the relay down (SIGINT: Server.Close) and watch the sockets end.
	r.proc.cmd.Process.Signal(os.Interrupt)
	ended := 0
	for _, str := range strs {
		str.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := str.Read(buf); err != nil && !isTimeout(err) {
			ended++
		}
	}
	refused := got[0] == 200 && got[1] == 200 && third.StatusCode == 429 && bind.StatusCode == 429 && delivered <= allowed && ended == 2
	report(t, refused, "limit 2: two CONNECT-UDP sockets %v, a third %d and a registration %d (%s); 2000 datagrams from the target, %d delivered (rate 100/s burst 10 allows %d); after SIGINT %d of 2 sockets' streams ended",
		got, third.StatusCode, bind.StatusCode, rlProxyError(bind.Header), delivered, allowed, ended)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

package attack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/storage/playback"
	"github.com/camagent/camagent/storage/recwire"
	"github.com/camagent/camagent/stream"
	"github.com/camagent/camagent/stream/wire"
)

// TestLimits is issue 11 items 7 and 8: what one paired viewer can make
// the camera hold or do. The camera is the real `camagent agent` on the
// built-in test source with a real `camagent relay` (NAT traversal runs
// only with relays), and the viewers are paired with `camagent pair` and
// `camagent join` as a user would; the attackers are Go clients using the
// viewer's own key and pairing files.
func TestLimits(t *testing.T) {
	cam := startLimitsCamera(t)
	attacker := cam.pairViewer(t, "attacker")
	victim := cam.pairViewer(t, "victim")

	t.Run("candidate_flood", func(t *testing.T) {
		// The attacker reports fake addresses of the camera from every
		// connection it may open (and moves each report around), trying to
		// fill the camera's candidate set and aim other viewers' probes.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fake := func(c, r int) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(16*c + r)}), 9)
		}
		isFake := func(a netip.AddrPort) bool { return a.Addr().As4()[0] == 203 }
		var attackConns []*stream.Client
		refusedConns := 0
		for c := range 8 {
			cl, err := cam.video(ctx, attacker)
			if err != nil {
				refusedConns++ // over the per-key limit: the next subtest's subject
				continue
			}
			attackConns = append(attackConns, cl)
			for r := range 4 {
				if err := cl.NATChannel().Send(&natwire.ObservedAddress{Seq: uint64(r), Addr: fake(c, r)}); err != nil {
					t.Fatalf("attacker report: %v", err)
				}
			}
		}
		defer func() {
			for _, cl := range attackConns {
				cl.Close()
			}
		}()
		// What the attacker's own connections are advertised: at most its
		// own reports back, capped.
		attackerSees := map[netip.AddrPort]bool{}
		for _, cl := range attackConns {
			for a := range limAdvertised(ctx, cl.NATChannel(), 1500*time.Millisecond) {
				attackerSees[a] = true
			}
		}
		cl, err := cam.video(ctx, victim)
		if err != nil {
			t.Fatalf("victim cannot connect: %v", err)
		}
		defer cl.Close()
		victimSees := limAdvertised(ctx, cl.NATChannel(), 2*time.Second)
		var fakesToVictim, fakesToAttacker []string
		for a := range victimSees {
			if isFake(a) {
				fakesToVictim = append(fakesToVictim, a.String())
			}
		}
		for a := range attackerSees {
			if isFake(a) {
				fakesToAttacker = append(fakesToAttacker, a.String())
			}
		}
		sort.Strings(fakesToVictim)
		real := cam.listen
		refused := victimSees[real] && len(fakesToVictim) == 0
		report(t, refused, "attacker sent %d fake OBSERVED_ADDRESS from %d connections (%d more refused); victim advertised %v (camera's %v present: %v; attacker's: %v); attacker's own fakes advertised back to it only: %d (cap 4)",
			4*len(attackConns), len(attackConns), refusedConns, limKeys(victimSees), real, victimSees[real], fakesToVictim, len(fakesToAttacker))
	})

	t.Run("conns_per_viewer_key", func(t *testing.T) {
		// One key opens 10 connections, live video and recordings mixed.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cam.waitConnsGone(t, attacker)
		var open []*quic.Conn
		defer func() {
			for _, c := range open {
				c.CloseWithError(0, "")
			}
		}()
		var admitted, busy int
		var reasons []string
		for i := range 10 {
			alpn := stream.ALPN
			if i%2 == 1 {
				alpn = playback.ALPN
			}
			conn, err := cam.dial(ctx, attacker, alpn)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			open = append(open, conn)
			if alpn == stream.ALPN {
				if _, err := stream.NewClient(ctx, conn, "attacker"); err == nil {
					admitted++
					continue
				}
			} else {
				// The camera refuses at once or keeps the connection.
				select {
				case <-conn.Context().Done():
				case <-time.After(500 * time.Millisecond):
					admitted++
					continue
				}
			}
			var appErr *quic.ApplicationError
			if err := context.Cause(conn.Context()); errors.As(err, &appErr) && appErr.ErrorCode == quic.ApplicationErrorCode(wire.ErrorBusy) {
				busy++
				reasons = append(reasons, appErr.ErrorMessage)
			} else {
				t.Logf("connection %d ended otherwise: %v", i, err)
			}
		}
		// Another viewer is still admitted.
		cl, err := cam.video(ctx, victim)
		victimOK := err == nil
		if victimOK {
			cl.Close()
		}
		refused := admitted == 4 && busy == 6 && victimOK
		report(t, refused, "10 connections of one viewer key (live and recordings): %d admitted, %d closed with BUSY (0x6): %q; another viewer admitted: %v",
			admitted, busy, limFirst(reasons), victimOK)
	})

	t.Run("rec_request_claims_1MiB", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cam.waitConnsGone(t, attacker)
		conn, err := cam.dial(ctx, attacker, playback.ALPN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseWithError(0, "")
		const streams = 64
		before := cam.heapInuse(t)
		start := time.Now()
		var during atomic.Int64
		probe := time.AfterFunc(time.Second, func() { during.Store(cam.heapInuse(t)) })
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errsSeen []string
		answered := 0
		for range streams {
			wg.Go(func() {
				str, err := conn.OpenStreamSync(ctx)
				if err != nil {
					return
				}
				defer str.CancelRead(0)
				// 1 MiB claimed, 1000 bytes sent, the rest never.
				msg := binary.BigEndian.AppendUint32(nil, 1<<20)
				msg = append(msg, make([]byte, 1000)...)
				if _, err := str.Write(msg); err != nil {
					return
				}
				str.SetReadDeadline(time.Now().Add(5 * time.Second))
				var resp recwire.Response
				if err := recwire.ReadMessage(str, &resp); err != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				answered++
				errsSeen = append(errsSeen, resp.Error)
			})
		}
		wg.Wait()
		took := time.Since(start)
		if probe.Stop() {
			during.Store(cam.heapInuse(t)) // all were answered within the second
		} else {
			for during.Load() == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		allRefused := answered == streams
		for _, e := range errsSeen {
			if !strings.Contains(e, "too large") {
				allRefused = false
			}
		}
		delta := during.Load() - before
		refused := allRefused && delta < 16<<20
		report(t, refused, "%d requests claiming 1 MiB each (1000 bytes sent, the rest never): %d answered in %v with %q; camera heap in use %d -> %d KiB while they were open (%+d KiB; 64 MiB if allocated as claimed)",
			streams, answered, took.Round(time.Millisecond), limFirst(errsSeen), before>>10, during.Load()>>10, delta>>10)
	})

	t.Run("concurrent_stills", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cam.waitConnsGone(t, attacker)
		// As many recordings connections as the key may hold, 50 still
		// requests on each: 200 at once.
		var clients []*playback.Client
		for range 4 {
			conn, err := cam.dial(ctx, attacker, playback.ALPN)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseWithError(0, "")
			clients = append(clients, playback.NewClient(conn))
		}
		mark := limLogLen(cam.proc)
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var done []time.Duration
		var failures []string
		for i := range 200 {
			c := clients[i%len(clients)]
			wg.Go(func() {
				jpg, err := c.Still(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil || len(jpg) < 2 || jpg[0] != 0xff || jpg[1] != 0xd8 {
					failures = append(failures, fmt.Sprint(err))
					return
				}
				done = append(done, time.Since(start))
			})
		}
		wg.Wait()
		sort.Slice(done, func(i, j int) bool { return done[i] < done[j] })
		// The camera logs every encode with the number in flight.
		peak, encodes := 0, 0
		re := regexp.MustCompile(`msg="still encoded".* in_flight=(\d+)`)
		for _, line := range limLogSince(cam.proc, mark) {
			if m := re.FindStringSubmatch(line); m != nil {
				encodes++
				n, _ := strconv.Atoi(m[1])
				peak = max(peak, n)
			}
		}
		spread := time.Duration(0)
		if len(done) > 0 {
			spread = done[len(done)-1] - done[0]
		}
		refused := encodes > 0 && peak <= 2 && len(done) == 200
		report(t, refused, "200 concurrent still requests on 4 connections: %d served, %d failed (%s); camera's counter: %d encodes, at most %d at once (limits.still_encodes 2); responses spread over %v",
			len(done), len(failures), limFirst(failures), encodes, peak, spread.Round(time.Millisecond))
	})
}

// limitsCamera is a running agent with a relay, and what is needed to
// pair with it.
type limitsCamera struct {
	proc   *proc
	flags  []string
	listen netip.AddrPort
	status string // the status endpoint (/metrics)
	dir    string
}

func startLimitsCamera(t *testing.T) *limitsCamera {
	t.Helper()
	dir := t.TempDir()
	relay := startProc(t, nil, "relay", "--listen", "127.0.0.1:0", "--state-dir", filepath.Join(dir, "relay"), "--token", "tok")
	url := relay.waitLine(t, regexp.MustCompile(`relay url: (\S+)`), 30*time.Second)[1]
	listen := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), limFreeUDPPort(t))
	cam := &limitsCamera{listen: listen, status: limFreeTCPAddr(t), dir: dir}
	cam.flags = []string{"--config", "/dev/null", "--name", "limits-camera", "--state-dir", filepath.Join(dir, "camera"),
		"--listen", listen.String(), "--capture.device", "test", "--capture.width", "320", "--capture.height", "240",
		"--capture.fps", "30", "--encode.codec", "h264", "--encode.keyframe-interval", "30",
		"--relay.urls", url, "--relay.token", "tok", "--status.listen", cam.status, "--log.level", "debug"}
	cam.proc = startProc(t, nil, append([]string{"agent"}, cam.flags...)...)
	cam.proc.waitLine(t, regexp.MustCompile(`msg=streaming`), 60*time.Second)
	cam.proc.waitLine(t, regexp.MustCompile(`msg="reflexive address from relay"`), 30*time.Second)
	return cam
}

// limitsViewer is a paired viewer's key and the camera as it knows it.
type limitsViewer struct {
	id  *identity.Identity
	cam identity.Camera
}

func (c *limitsCamera) pairViewer(t *testing.T, name string) limitsViewer {
	t.Helper()
	out, err := exec.Command(camagentBin(t), append([]string{"pair", "--uri-only", "--addr", c.listen.String()}, c.flags...)...).Output()
	if err != nil {
		t.Fatalf("camagent pair: %v", err)
	}
	vdir := filepath.Join(c.dir, name)
	join := exec.Command(camagentBin(t), "join", strings.TrimSpace(string(out)), "--state-dir", vdir, "--as", name)
	if out, err := join.CombinedOutput(); err != nil {
		t.Fatalf("camagent join: %v\n%s", err, out)
	}
	id, err := identity.LoadOrCreate(vdir)
	if err != nil {
		t.Fatal(err)
	}
	cams, err := identity.OpenCameraStore(identity.CamerasPath(vdir))
	if err != nil {
		t.Fatal(err)
	}
	cam, err := cams.Get("limits-camera")
	if err != nil {
		t.Fatal(err)
	}
	return limitsViewer{id: id, cam: cam}
}

func (c *limitsCamera) dial(ctx context.Context, v limitsViewer, alpn string) (*quic.Conn, error) {
	return quic.DialAddr(ctx, c.listen.String(), identity.ClientTLSConfig(v.id, v.cam.Fingerprint, alpn), stream.QUICConfig())
}

// video opens a live-video session.
func (c *limitsCamera) video(ctx context.Context, v limitsViewer) (*stream.Client, error) {
	conn, err := c.dial(ctx, v, stream.ALPN)
	if err != nil {
		return nil, err
	}
	cl, err := stream.NewClient(ctx, conn, "limits-test")
	if err != nil {
		conn.CloseWithError(0, "")
		return nil, err
	}
	return cl, nil
}

// waitConnsGone gives the camera a moment to see the previous subtest's
// connections closed, so that each subtest starts with the key's slots
// free: it waits until a recordings connection of v is admitted and
// stays admitted.
func (c *limitsCamera) waitConnsGone(t *testing.T, v limitsViewer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var conns []*quic.Conn
		ok := true
		for range 4 {
			conn, err := c.dial(ctx, v, playback.ALPN)
			if err != nil {
				ok = false
				break
			}
			conns = append(conns, conn)
		}
		if ok {
			select {
			case <-time.After(300 * time.Millisecond):
			case <-conns[len(conns)-1].Context().Done():
				ok = false
			}
		}
		for _, conn := range conns {
			if conn.Context().Err() != nil {
				ok = false
			}
			conn.CloseWithError(0, "")
		}
		cancel()
		if ok {
			time.Sleep(300 * time.Millisecond) // and these closes are seen too
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the camera still holds the key's earlier connections")
}

// heapInuse is the agent's Go heap in use, from its status endpoint
// (go_memstats_heap_inuse_bytes).
func (c *limitsCamera) heapInuse(t *testing.T) int64 {
	resp, err := http.Get("http://" + c.status + "/metrics")
	if err != nil {
		t.Error(err)
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
		return -1
	}
	m := regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Error("no go_memstats_heap_inuse_bytes in /metrics")
		return -1
	}
	f, _ := strconv.ParseFloat(string(m[1]), 64)
	return int64(f)
}

// limAdvertised follows the camera's ADD_ADDRESS and REMOVE_ADDRESS on ch
// for d and returns the candidates advertised at the end.
func limAdvertised(ctx context.Context, ch natwire.Channel, d time.Duration) map[netip.AddrPort]bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	bySeq := map[uint64]netip.AddrPort{}
	for {
		f, err := ch.Receive(ctx)
		if err != nil {
			break
		}
		switch f := f.(type) {
		case *natwire.AddAddress:
			bySeq[f.Seq] = f.Addr
		case *natwire.RemoveAddress:
			delete(bySeq, f.Seq)
		}
	}
	out := map[netip.AddrPort]bool{}
	for _, a := range bySeq {
		out[a] = true
	}
	return out
}

func limKeys(m map[netip.AddrPort]bool) []string {
	var out []string
	for a := range m {
		out = append(out, a.String())
	}
	sort.Strings(out)
	return out
}

func limFirst(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func limFreeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func limFreeUDPPort(t *testing.T) uint16 {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

// limLogLen and limLogSince read a process's log from a point on.
func limLogLen(p *proc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

func limLogSince(p *proc, n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines[n:]...)
}

package masqueinterop

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/masque-go"
)

// BenchmarkSideBySide runs the same masque-go client, in this process,
// through `camagent relay` and through masque-go's own proxy, each in a
// process of its own, to the same UDP echo, in alternating rounds of one
// run. Per round and proxy it measures
//   - saturation: echoed payload throughput with 64 datagrams of 1200
//     bytes in flight, and the proxy's CPU time per forwarded datagram
//     (each echo is forwarded twice);
//   - paced: the same datagrams at a fixed rate both proxies carry (by
//     default 60 Mbit/s, MASQUEINTEROP_MBPS), where CPU per datagram
//     compares like with like (at saturation the faster proxy also gets
//     bigger batches per wake-up, which flatters it).
//
// The relay runs with --datagram-rate raised so that the rate limit does
// not decide the figure; BenchmarkDefaultRate checks the default.
// Medians of the rounds and our/their ratios are printed and reported.
// Run with -benchtime=1x; MASQUEINTEROP_ROUNDS (default 5) and
// MASQUEINTEROP_SECONDS (default 2) set the length.
func BenchmarkSideBySide(b *testing.B) {
	rounds, secs, mbps := envInt("MASQUEINTEROP_ROUNDS", 5), envInt("MASQUEINTEROP_SECONDS", 2), envInt("MASQUEINTEROP_MBPS", 60)
	d := time.Duration(secs) * time.Second
	echo := echoUDP(b)
	ours := startRelay(b, "--datagram-rate", "1e9", "--datagram-burst", "1000000")
	theirs := startMasqueGoProxy(b)
	servers := []*server{ours, theirs}
	// MASQUEINTEROP_CONTROL_BIN: a third proxy binary that prints "ready
	// ADDR" and serves like TestMasqueGoProxyProcess, e.g. masque-go's
	// proxy patched to build against the product's quic-go (v0.65.0), to
	// tell the quic-go version's share of a difference from the relay's.
	var control *server
	if bin := os.Getenv("MASQUEINTEROP_CONTROL_BIN"); bin != "" {
		cmd := exec.Command(bin)
		m := startServer(b, cmd, regexp.MustCompile(`^ready ([0-9.]+:[0-9]+)$`))
		control = &server{name: "control", cmd: cmd, addr: m[1]}
		servers = append(servers, control)
	}
	ctx := context.Background()
	// A new CONNECT-UDP connection for every phase: masque-go's Conn
	// honours only its first read deadline (v0.6.0's SetReadDeadline
	// renews the read context only while the previous deadline is still
	// ahead), and the phases end their readers by deadline.
	dial := func(s *server) *masque.Conn {
		c := dialThrough(b, ctx, s, echo, nil)
		saturate(c, 1200, 1, 50*time.Millisecond) // warm up
		return dialThrough(b, ctx, s, echo, nil)
	}
	type sample struct{ mbps, cpuPerDgram, pacedCPU, pacedMbps float64 }
	res := map[*server][]sample{}
	for range b.N {
		for r := range rounds {
			order := append([]*server(nil), servers...)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, s := range order {
				c, c2 := dial(s), dial(s)
				cpu0 := s.cpu(b)
				bytes, dgrams := saturate(c, 1200, 64, d)
				cpu1 := s.cpu(b)
				pBytes, pDgrams := paced(c2, 1200, float64(mbps), d)
				cpu2 := s.cpu(b)
				c.Close()
				c2.Close()
				res[s] = append(res[s], sample{
					mbps:        bytes * 8 / 1e6 / d.Seconds(),
					cpuPerDgram: float64((cpu1 - cpu0).Nanoseconds()) / 1e3 / float64(2*dgrams),
					pacedMbps:   pBytes * 8 / 1e6 / d.Seconds(),
					pacedCPU:    float64((cpu2 - cpu1).Nanoseconds()) / 1e3 / float64(2*max(pDgrams, 1)),
				})
			}
		}
	}
	med := func(s *server, f func(sample) float64) float64 {
		var v []float64
		for _, x := range res[s] {
			v = append(v, f(x))
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	all := func(s *server, f func(sample) float64) string {
		out := ""
		for _, x := range res[s] {
			out += fmt.Sprintf(" %.1f", f(x))
		}
		return out
	}
	mb := func(x sample) float64 { return x.mbps }
	cpu := func(x sample) float64 { return x.cpuPerDgram }
	pm := func(x sample) float64 { return x.pacedMbps }
	pc := func(x sample) float64 { return x.pacedCPU }
	for _, s := range servers {
		fmt.Printf("%-16s saturation Mbit/s:%s (median %.1f); CPU us/datagram:%s (median %.2f)\n", s.name, all(s, mb), med(s, mb), all(s, cpu), med(s, cpu))
		fmt.Printf("%-16s paced %d Mbit/s: carried%s Mbit/s; CPU us/datagram:%s (median %.2f)\n", s.name, mbps, all(s, pm), all(s, pc), med(s, pc))
	}
	tr, cr, pr := med(ours, mb)/med(theirs, mb), med(ours, cpu)/med(theirs, cpu), med(ours, pc)/med(theirs, pc)
	fmt.Printf("ours/masque-go: throughput %.2fx, CPU per datagram at saturation %.2fx, CPU per datagram paced %.2fx\n", tr, cr, pr)
	if control != nil {
		fmt.Printf("ours/control: throughput %.2fx, CPU per datagram at saturation %.2fx, CPU per datagram paced %.2fx\n",
			med(ours, mb)/med(control, mb), med(ours, cpu)/med(control, cpu), med(ours, pc)/med(control, pc))
		fmt.Printf("control/masque-go: throughput %.2fx, CPU per datagram at saturation %.2fx, CPU per datagram paced %.2fx\n",
			med(control, mb)/med(theirs, mb), med(control, cpu)/med(theirs, cpu), med(control, pc)/med(theirs, pc))
	}
	b.ReportMetric(med(ours, mb), "ours-Mbit/s")
	b.ReportMetric(med(theirs, mb), "masquego-Mbit/s")
	b.ReportMetric(tr, "throughput-ratio")
	b.ReportMetric(cr, "cpu/dgram-ratio")
	b.ReportMetric(pr, "paced-cpu/dgram-ratio")
}

// BenchmarkDefaultRate: a 4K camera's peak (25 Mbit/s of 1200-byte
// datagrams, about 2600/s), three and seven such viewers at once (a
// registration carries all of its camera's viewers) go through a relay
// with the default --datagram-rate; masque-go's proxy, which has no rate
// limit, carries the same load in the same run as the baseline for losses
// that are not the limit's (the relay's drop counters tell those apart).
func BenchmarkDefaultRate(b *testing.B) {
	echo := echoUDP(b)
	metrics := "127.0.0.1:" + fmt.Sprint(9400+os.Getpid()%500)
	ours := startRelay(b, "--metrics", metrics)
	theirs := startMasqueGoProxy(b)
	for range b.N {
		for _, mbps := range []float64{25, 75, 175} {
			for _, s := range []*server{ours, theirs} {
				conn := dialThrough(b, context.Background(), s, echo, nil)
				sent := int(mbps * 1e6 / 8 / 1200 * 3)
				_, got := paced(conn, 1200, mbps, 3*time.Second)
				conn.Close()
				loss := 100 * float64(sent-got) / float64(sent)
				fmt.Printf("%-16s %v Mbit/s (%.0f datagrams/s) for 3 s: %d of %d echoed (%.2f%% lost)\n", s.name, mbps, mbps*1e6/8/1200, got, sent, loss)
				if s == ours {
					b.ReportMetric(loss, fmt.Sprintf("loss%%-at-%vMbit", mbps))
				}
			}
			fmt.Printf("camagent relay   drops so far: rate %s, too_large %s\n", scrape(b, metrics, `camagent_relay_drops_total{reason="rate"}`),
				scrape(b, metrics, `camagent_relay_drops_total{reason="too_large"}`))
		}
	}
}

// scrape reads one sample from the relay's metrics.
func scrape(tb testing.TB, addr, name string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return "?"
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// saturate keeps window datagrams of size bytes in flight for d and
// returns the echoed bytes and datagrams. A lost datagram frees its slot
// after 20 ms, as a real sender's would.
func saturate(c *masque.Conn, size, window int, d time.Duration) (float64, int) {
	tokens := make(chan struct{}, window)
	for range window {
		tokens <- struct{}{}
	}
	var bytes, n atomic.Int64
	stop := time.Now().Add(d)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		c.SetReadDeadline(stop.Add(50 * time.Millisecond))
		for {
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if time.Now().Before(stop) {
				bytes.Add(int64(k))
				n.Add(1)
			}
			select {
			case tokens <- struct{}{}:
			default:
			}
		}
	}()
	msg := make([]byte, size)
	loss := time.NewTimer(time.Hour)
	for time.Now().Before(stop) {
		loss.Reset(20 * time.Millisecond)
		select {
		case <-tokens:
		case <-loss.C:
		}
		c.WriteTo(msg, nil)
	}
	<-done
	return float64(bytes.Load()), int(n.Load())
}

// paced sends size-byte datagrams at mbps for d, a burst every
// millisecond, and returns the echoed bytes and datagrams.
func paced(c *masque.Conn, size int, mbps float64, d time.Duration) (float64, int) {
	var bytes, n atomic.Int64
	stop := time.Now().Add(d)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		c.SetReadDeadline(stop.Add(100 * time.Millisecond))
		for {
			k, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			bytes.Add(int64(k))
			n.Add(1)
		}
	}()
	msg := make([]byte, size)
	perSecond := mbps * 1e6 / 8 / float64(size)
	tick := time.NewTicker(time.Millisecond)
	start := time.Now()
	sent := 0
	for now := range tick.C {
		el := now.Sub(start)
		if el >= d {
			break
		}
		for ; float64(sent) < el.Seconds()*perSecond; sent++ {
			c.WriteTo(msg, nil)
		}
	}
	tick.Stop()
	<-done
	return float64(bytes.Load()), int(n.Load())
}

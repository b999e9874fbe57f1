package relayclient

import (
	"context"
	"net/netip"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/camagent/camagent/p2p/relayserver"
)

// benchPair is a viewer connection to an echo camera, either direct or
// through a relay on loopback.
func benchPair(b *testing.B, viaRelay bool) *quic.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	b.Cleanup(cancel)
	cam := startCamera(b)
	target := cam.mux.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
	if viaRelay {
		rl := startRelay(b, relayserver.Config{DatagramRate: 1e9, DatagramBurst: 1e6})
		k := NewKeeper(KeeperConfig{Relays: []RelayURL{rl.url}, Identity: cam.id, Token: rl.Token, Mux: cam.mux, Locators: testLocators(cam.id)})
		go k.Run(ctx)
		waitRegistered(b, ctx, k)
		var err error
		if target, err = Locate(ctx, rl.url.WithSecret(testSecret(cam.id, rl.url)), nil); err != nil {
			b.Fatal(err)
		}
	}
	return dialViewer(b, ctx, cam, target)
}

// echoThroughput sends size-byte datagrams with up to window outstanding
// for d and returns echoed bytes per second. Lost datagrams free their
// window slot after a timeout, as a real sender's would.
func echoThroughput(conn *quic.Conn, size, window int, d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tokens := make(chan struct{}, window)
	for range window {
		tokens <- struct{}{}
	}
	var mu sync.Mutex
	echoed := 0
	go func() {
		for {
			p, err := conn.ReceiveDatagram(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			echoed += len(p)
			mu.Unlock()
			select {
			case tokens <- struct{}{}:
			default:
			}
		}
	}()
	msg := make([]byte, size)
	start := time.Now()
	for ctx.Err() == nil {
		select {
		case <-tokens:
		case <-time.After(20 * time.Millisecond): // a loss: free the slot
		case <-ctx.Done():
		}
		conn.SendDatagram(msg)
	}
	mu.Lock()
	defer mu.Unlock()
	return float64(echoed) / time.Since(start).Seconds()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRelayEndToEnd is the end-to-end figure, not the relay's own
// (that is BenchmarkRelayForwarding): datagram echo throughput of a
// viewer's QUIC connection to a camera through the relay, against the
// same viewer and camera connected directly, and CPU per Mbit/s. Viewer,
// relay and camera all run in this process on the same cores, and the
// relayed path carries every packet inside a second QUIC connection (the
// camera's tunnel), so it measures the whole relayed system.
func BenchmarkRelayEndToEnd(b *testing.B) {
	const size, window, dur = 1000, 64, 2 * time.Second
	direct := benchPair(b, false)
	relayed := benchPair(b, true)
	var dRate, rRate, dCPU, rCPU float64
	for b.Loop() {
		c0 := cpuTime()
		dRate = echoThroughput(direct, size, window, dur)
		c1 := cpuTime()
		rRate = echoThroughput(relayed, size, window, dur)
		c2 := cpuTime()
		dCPU = (c1 - c0).Seconds() * 1000 / (dRate * 8 / 1e6 * dur.Seconds())
		rCPU = (c2 - c1).Seconds() * 1000 / (rRate * 8 / 1e6 * dur.Seconds())
	}
	b.ReportMetric(dRate*8/1e6, "e2e-direct-Mbit/s")
	b.ReportMetric(rRate*8/1e6, "e2e-relay-Mbit/s")
	b.ReportMetric(100*rRate/dRate, "e2e-relay-%-of-direct")
	b.ReportMetric(dCPU, "e2e-direct-cpu-ms/Mbit")
	b.ReportMetric(rCPU, "e2e-relay-cpu-ms/Mbit")
}

// BenchmarkRelayEndToEndLatency is the datagram round trip of a viewer's
// connection to a camera through the relay against the direct one,
// median of 200 pings each, all in this process.
func BenchmarkRelayEndToEndLatency(b *testing.B) {
	direct := benchPair(b, false)
	relayed := benchPair(b, true)
	var d, r time.Duration
	for b.Loop() {
		d = medianRTT(b, direct, 200)
		r = medianRTT(b, relayed, 200)
	}
	b.ReportMetric(float64(d.Microseconds()), "e2e-direct-rtt-us")
	b.ReportMetric(float64(r.Microseconds()), "e2e-relay-rtt-us")
	b.ReportMetric(float64((r - d).Microseconds()), "e2e-added-us")
}

func medianRTT(b *testing.B, conn *quic.Conn, n int) time.Duration {
	var rtts []time.Duration
	for range n {
		start := time.Now()
		if err := conn.SendDatagram([]byte("ping")); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := conn.ReceiveDatagram(ctx)
		cancel()
		if err == nil {
			rtts = append(rtts, time.Since(start))
		}
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return rtts[len(rtts)/2]
}

// BenchmarkIdleRegistrationMemory holds 10,000 idle registrations (60 per
// camera connection) and reports heap and goroutine-stack growth per
// registration. Both ends live in this process, so the figure is an upper
// bound on the relay's share.
func BenchmarkIdleRegistrationMemory(b *testing.B) {
	const total, perConn = 10000, 60
	for b.Loop() {
		rl := startRelay(b, relayserver.Config{MaxPerConn: perConn})
		cam := startCamera(b)
		before := memInUse()
		var conns []*Conn
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		for len(conns) < total {
			qconn, err := quic.DialAddr(ctx, rl.url.Addr, rl.url.tlsConfig(cam.id), profile.QUICConfig())
			if err != nil {
				b.Fatal(err)
			}
			cc, err := clientConn(ctx, qconn)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < perConn && len(conns) < total; i++ {
				c, err := register(ctx, qconn, cc, Options{Relay: rl.url, Identity: cam.id, Token: rl.Token}, nil)
				if err != nil {
					b.Fatalf("registration %d: %v", len(conns), err)
				}
				conns = append(conns, c)
			}
		}
		cancel()
		if got := rl.Server.Registrations(); got != total {
			b.Fatalf("relay holds %d registrations, want %d", got, total)
		}
		after := memInUse()
		b.ReportMetric(float64(after-before)/total/1024, "KiB/registration")
		b.ReportMetric(total, "registrations")
		for _, c := range conns {
			c.Close()
		}
	}
}

func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

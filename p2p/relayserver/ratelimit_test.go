package relayserver

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	now := time.Unix(1e9, 0)
	b := newTokenBucket(100, 10, func() time.Time { return now })
	n := 0
	for range 50 {
		if b.allow() {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("burst: %d allowed, want 10", n)
	}
	now = now.Add(50 * time.Millisecond) // 5 tokens
	n = 0
	for range 50 {
		if b.allow() {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("after 50 ms at 100/s: %d allowed, want 5", n)
	}
	now = now.Add(time.Hour) // refills to the burst, no more
	n = 0
	for range 50 {
		if b.allow() {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("after an hour: %d allowed, want the burst of 10", n)
	}
	u := newTokenBucket(1e9, 1, func() time.Time { return now })
	for range 3 {
		if !u.allow() {
			t.Fatal("a rate of 1e9/s limits")
		}
	}
}

// TestTokenBucketConcurrent: goroutines sharing a bucket get exactly its
// burst between them (the compare-and-swap loses no update).
func TestTokenBucketConcurrent(t *testing.T) {
	now := time.Unix(1e9, 0)
	b := newTokenBucket(1, 1000, func() time.Time { return now })
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if b.allow() {
					got.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got.Load() != 1000 {
		t.Fatalf("%d allowed, want 1000", got.Load())
	}
}

func TestBatchReader(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			lo := "127.0.0.1:0"
			if network == "udp6" {
				lo = "[::1]:0"
			}
			sock, err := net.ListenPacket(network, lo)
			if err != nil {
				t.Skip(err)
			}
			defer sock.Close()
			from, err := net.ListenPacket(network, lo)
			if err != nil {
				t.Fatal(err)
			}
			defer from.Close()
			for i := range 5 {
				from.WriteTo([]byte{byte(i), 1, 2}, sock.LocalAddr())
			}
			r, err := newBatchReader(sock.(*net.UDPConn), 8, 1500)
			if err != nil {
				t.Fatal(err)
			}
			want := from.LocalAddr().(*net.UDPAddr).AddrPort()
			want = netip.AddrPortFrom(want.Addr().Unmap(), want.Port())
			got := 0
			for got < 5 {
				n, err := r.readBatch()
				if err != nil {
					t.Fatal(err)
				}
				for i := range n {
					if p := r.packet(i); len(p) != 3 || p[0] != byte(got) || r.addrs[i] != want {
						t.Fatalf("packet %d: %v from %v, want [%d 1 2] from %v", got, p, r.addrs[i], got, want)
					}
					got++
				}
			}
			if n := testing.AllocsPerRun(20, func() {
				from.WriteTo([]byte{9}, sock.LocalAddr())
				r.readBatch()
			}); n > 2 { // WriteTo's own
				t.Fatalf("%v allocations per batch", n)
			}
		})
	}
}

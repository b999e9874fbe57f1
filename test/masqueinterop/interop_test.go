package masqueinterop

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// TestInterop: masque-go's RFC 9298 client sends 1000 datagrams of
// varied sizes through `camagent relay` to a UDP echo on loopback (which
// the relay's --allow-target 127.0.0.1/32 admits) and gets every one back
// byte for byte, with and without the optional Capsule-Protocol header.
func TestInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the relay binary")
	}
	relay := startRelay(t)
	echo := echoUDP(t)
	for _, tc := range []struct {
		name   string
		header func(http.Header)
	}{
		{"Capsule-Protocol ?1", nil},
		{"no Capsule-Protocol", func(h http.Header) { h.Del(http3.CapsuleProtocolHeader) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			conn := dialThrough(t, ctx, relay, echo, tc.header)
			rng := rand.New(rand.NewPCG(1, 2))
			const n = 1000
			ok, resent := 0, 0
			buf := make([]byte, 2048)
			for i := range n {
				msg := make([]byte, 1+rng.IntN(1200))
				for j := range msg {
					msg[j] = byte(rng.Uint32())
				}
				msg[0] = byte(i) // tells a late echo of the previous one apart
			got:
				for try := 0; try < 5; try++ {
					if try > 0 {
						resent++
					}
					if _, err := conn.WriteTo(msg, nil); err != nil {
						t.Fatalf("datagram %d: %v", i, err)
					}
					conn.SetReadDeadline(time.Now().Add(time.Second))
					for {
						k, _, err := conn.ReadFrom(buf)
						if err != nil {
							break // timeout: send again
						}
						if bytes.Equal(buf[:k], msg) {
							ok++
							break got
						}
					}
				}
			}
			t.Logf("masque-go client through camagent relay: %d/%d datagrams echoed byte-exact (%d resent after a loss)", ok, n, resent)
			if ok != n {
				t.Fatalf("%d/%d datagrams came back, %d resent", ok, n, resent)
			}
		})
	}
}

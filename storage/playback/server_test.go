package playback

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/storage/recwire"
)

// serveOne serves src on a loopback listener and returns a client
// connection to it.
func serveOne(t *testing.T, src Source) *quic.Conn {
	t.Helper()
	testtier.Slow(t, "QUIC end to end on loopback")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{ALPN},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		Serve(ctx, conn, src, nil)
		conn.CloseWithError(0, "")
	})
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	conn, err := quic.DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

// TestOversizedRequestRefusedUnread: a request that claims 1 MiB is
// answered with an error naming the limit at once, without waiting for
// (or buffering) its body.
func TestOversizedRequestRefusedUnread(t *testing.T) {
	conn := serveOne(t, Source{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The length only, and no body: a server that waited for the claimed
	// megabyte would answer nothing before the request timeout.
	if _, err := str.Write(binary.BigEndian.AppendUint32(nil, 1<<20)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var resp recwire.Response
	if err := recwire.ReadMessage(str, &resp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Error, "too large") || !strings.Contains(resp.Error, "limit 4096") {
		t.Fatalf("response %+v", resp)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("refusal took %v", d)
	}
}

// TestRequestsPerConnectionBounded: 40 still requests on one connection
// are served at most MaxRequests at a time; the others wait and are
// served later.
func TestRequestsPerConnectionBounded(t *testing.T) {
	const limit, total = 3, 40
	var now, peak atomic.Int32
	release := make(chan struct{})
	src := Source{MaxRequests: limit, Still: func(ctx context.Context) ([]byte, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return []byte{0xff, 0xd8, 0xff, 0xd9}, nil
	}}
	conn := serveOne(t, src)
	c := NewClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, total)
	for range total {
		go func() {
			_, err := c.Still(ctx)
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for now.Load() < limit && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let any excess request in, were there one
	if got := peak.Load(); got != limit {
		t.Fatalf("%d requests served at once, want %d", got, limit)
	}
	close(release)
	for range total {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := peak.Load(); got > limit {
		t.Fatalf("%d requests served at once, limit %d", got, limit)
	}
}

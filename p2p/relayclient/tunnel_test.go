package relayclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
)

// testRelay is a relay from relaytest with its URL parsed.
type testRelay struct {
	*relaytest.Relay
	url RelayURL
}

func startRelay(t testing.TB, cfg relayserver.Config) *testRelay {
	t.Helper()
	return parseRelay(t, relaytest.Start(t, cfg))
}

func parseRelay(t testing.TB, r *relaytest.Relay) *testRelay {
	t.Helper()
	u, err := ParseRelayURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &testRelay{Relay: r, url: u}
}

// camera is a QUIC echo server on a Mux, like the agent's listener.
type camera struct {
	id  *identity.Identity
	mux *Mux
	tr  *quic.Transport
	ln  *quic.Listener
}

func startCamera(t testing.TB) *camera {
	t.Helper()
	testtier.Slow(t, "a camera over QUIC on loopback")
	id, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := NewMux(udp)
	tr := &quic.Transport{Conn: mux}
	ln, err := tr.Listen(serverTLS(id), &quic.Config{EnableDatagrams: true, MaxIdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); tr.Close(); mux.Close() })
	go func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go echo(conn)
		}
	}()
	return &camera{id: id, mux: mux, tr: tr, ln: ln}
}

func echo(conn *quic.Conn) {
	go func() {
		for {
			d, err := conn.ReceiveDatagram(context.Background())
			if err != nil {
				return
			}
			conn.SendDatagram(d)
		}
	}()
	for {
		str, err := conn.AcceptStream(context.Background())
		if err != nil {
			return
		}
		go func() { io.Copy(str, str); str.Close() }()
	}
}

func dialViewer(t testing.TB, ctx context.Context, cam *camera, addr netip.AddrPort) *quic.Conn {
	t.Helper()
	vid, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := quic.DialAddr(ctx, addr.String(), identity.ClientTLSConfig(vid, cam.id.Fingerprint, "echo"),
		&quic.Config{EnableDatagrams: true, MaxIdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

func roundTrip(t testing.TB, conn *quic.Conn, size int) {
	t.Helper()
	str, err := conn.OpenStreamSync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, size)
	rand.Read(msg)
	go func() { str.Write(msg); str.Close() }()
	got, err := io.ReadAll(str)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes came back as %d different bytes", size, len(got))
	}
}

func TestViewerReachesCameraThroughRelay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	cam := startCamera(t)
	k := NewKeeper(KeeperConfig{Relays: []RelayURL{rl.url}, Identity: cam.id, Token: rl.Token, Mux: cam.mux, Locators: testLocators(cam.id)})
	go k.Run(ctx)
	waitRegistered(t, ctx, k)

	viewerURL := rl.url.WithSecret(testSecret(cam.id, rl.url))
	pub, err := Locate(ctx, viewerURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Public()[rl.url.Addr]; got != pub.String() {
		t.Fatalf("locate says %s, camera registered %s", pub, got)
	}
	conn := dialViewer(t, ctx, cam, pub)
	roundTrip(t, conn, 1<<20) // 1 MiB through the tunnel, both ways
	if err := conn.SendDatagram([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	d, err := conn.ReceiveDatagram(ctx)
	if err != nil || string(d) != "ping" {
		t.Fatalf("datagram echo: %q %v", d, err)
	}
	m := rl.Server.Metrics()
	if m.BytesToCamera.Load() < 1<<20 || m.BytesFromCamera.Load() < 1<<20 {
		t.Fatalf("relay forwarded %d/%d bytes, want >= 1 MiB each way", m.BytesToCamera.Load(), m.BytesFromCamera.Load())
	}
}

func waitRegistered(t testing.TB, ctx context.Context, k *Keeper) string {
	t.Helper()
	select {
	case addr := <-k.Registered():
		return addr
	case <-ctx.Done():
		t.Fatal("camera never registered")
		return ""
	}
}

func TestLocateUnknownSecretIsNotFound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	secret := make([]byte, 32)
	rand.Read(secret)
	_, err := Locate(ctx, rl.url.WithSecret(secret), nil)
	if err == nil || !bytesContains(err.Error(), ErrNotRegistered.Error()) {
		t.Fatalf("err = %v, want not registered", err)
	}
}

func bytesContains(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }

func TestRegistrationNeedsAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	cam := startCamera(t)
	for name, tok := range map[string]string{"no token": "", "wrong token": "guess"} {
		_, err := Register(ctx, Options{Relay: rl.url, Identity: cam.id, Token: tok})
		if err == nil || !bytesContains(err.Error(), "401") {
			t.Errorf("%s: err = %v, want 401", name, err)
		}
	}
	// A key on the allow-list needs no token.
	rl2 := startRelay(t, relayserver.Config{Tokens: []string{}, Keys: []string{cam.id.Fingerprint}})
	c, err := Register(ctx, Options{Relay: rl2.url, Identity: cam.id})
	if err != nil {
		t.Fatalf("allow-listed key: %v", err)
	}
	c.Close()
}

func TestRelayPinIsChecked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	cam := startCamera(t)
	wrong := rl.url
	wrong.Fingerprint = cam.id.Fingerprint
	if _, err := Register(ctx, Options{Relay: wrong, Identity: cam.id, Token: rl.Token}); err == nil {
		t.Fatal("registered with a relay whose key does not match the pin")
	}
}

func TestConnLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	cam := startCamera(t)
	t.Run("Close", func(t *testing.T) {
		c, err := Register(ctx, Options{Relay: rl.url, Identity: cam.id, Token: rl.Token})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-c.Done()
		if err := c.Err(); err != nil {
			t.Fatalf("Err after Close: %v", err)
		}
		if _, _, err := c.ReadFrom(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrom after Close: %v, want net.ErrClosed", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("connection lost", func(t *testing.T) {
		c, err := Register(ctx, Options{Relay: rl.url, Identity: cam.id, Token: rl.Token})
		if err != nil {
			t.Fatal(err)
		}
		c.qconn.CloseWithError(0, "gone") // as when the relay goes away
		<-c.Done()
		if err := c.Err(); err == nil {
			t.Fatal("Err = nil after the connection was lost")
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close after the loss: %v", err)
		}
		if err := c.Err(); err == nil {
			t.Fatal("Close after the loss hid its cause")
		}
	})
}

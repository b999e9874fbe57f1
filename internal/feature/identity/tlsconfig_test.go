package identity

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/testtier"
)

const (
	testVideoALPN = "test-video/1"
	testPairALPN  = "test-pair/1"
)

// startCamera runs a QUIC listener with ServerTLSConfig. Every connection
// that survives the handshake gets one uni stream carrying the negotiated
// ALPN, which is how a client learns it was admitted.
func startCamera(t *testing.T, id *Identity, viewers *ViewerStore) string {
	t.Helper()
	testtier.Slow(t, "QUIC handshakes on loopback")
	conf := ServerTLSConfig(id, viewers, testVideoALPN, testPairALPN, nil)
	ln, err := quic.ListenAddr("127.0.0.1:0", conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			go greet(conn)
		}
	}()
	return ln.Addr().String()
}

func greet(conn *quic.Conn) {
	s, err := conn.OpenUniStream()
	if err != nil {
		return
	}
	s.Write([]byte(conn.ConnectionState().TLS.NegotiatedProtocol))
	s.Close()
	<-conn.Context().Done()
}

// connect dials addr and returns the ALPN the camera greeted with, or the
// error that ended the attempt. In TLS 1.3 the client finishes its side of
// the handshake before the server has checked the client certificate, so a
// refusal may surface at dial time or at the first read.
func connect(t *testing.T, addr string, conf *tls.Config) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, addr, conf, nil)
	if err != nil {
		return "", err
	}
	defer conn.CloseWithError(0, "")
	s, err := conn.AcceptUniStream(ctx)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(s)
	return string(b), err
}

// isHandshakeRefusal reports whether err is a TLS alert carried as a QUIC
// CRYPTO_ERROR, the signature of a refusal during the handshake.
func isHandshakeRefusal(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.ErrorCode.IsCryptoError()
}

type fixture struct {
	camera  *Identity
	viewers *ViewerStore
	addr    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	camera, err := LoadOrCreate(filepath.Join(dir, "camera"))
	if err != nil {
		t.Fatal(err)
	}
	viewers := openViewers(t, filepath.Join(dir, "camera", ViewersFile))
	return &fixture{camera: camera, viewers: viewers, addr: startCamera(t, camera, viewers)}
}

func TestServerAdmitsPairedViewer(t *testing.T) {
	f := newFixture(t)
	viewer := newTestIdentity(t)
	mustAdd(t, f.viewers, "phone", viewer.Fingerprint)
	got, err := connect(t, f.addr, ClientTLSConfig(viewer, f.camera.Fingerprint, testVideoALPN))
	if err != nil {
		t.Fatalf("paired viewer refused: %v", err)
	}
	if got != testVideoALPN {
		t.Fatalf("negotiated %q", got)
	}
}

func TestServerRefusesAtHandshake(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, f *fixture, viewer *Identity)
	}{
		{"unpaired", func(*testing.T, *fixture, *Identity) {}},
		{"revoked", func(t *testing.T, f *fixture, v *Identity) {
			mustAdd(t, f.viewers, "phone", v.Fingerprint)
			if _, err := f.viewers.Revoke("phone"); err != nil {
				t.Fatal(err)
			}
		}},
		{"revoked by another process", func(t *testing.T, f *fixture, v *Identity) {
			mustAdd(t, f.viewers, "phone", v.Fingerprint)
			if _, ok := f.viewers.Allowed(v.Fingerprint); !ok {
				t.Fatal("not allowed before revocation")
			}
			cli := openViewers(t, f.viewers.file.Path())
			if _, err := cli.Revoke("phone"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			viewer := newTestIdentity(t)
			tc.setup(t, f, viewer)
			got, err := connect(t, f.addr, ClientTLSConfig(viewer, f.camera.Fingerprint, testVideoALPN))
			if err == nil {
				t.Fatalf("admitted, greeted with %q", got)
			}
			if !isHandshakeRefusal(err) {
				t.Fatalf("refused with %v, want a CRYPTO_ERROR", err)
			}
		})
	}
}

func TestServerRefusesClientWithoutCertificate(t *testing.T) {
	f := newFixture(t)
	for _, alpn := range []string{testVideoALPN, testPairALPN} {
		conf := ClientTLSConfig(newTestIdentity(t), f.camera.Fingerprint, alpn)
		conf.Certificates = nil
		if _, err := connect(t, f.addr, conf); !isHandshakeRefusal(err) {
			t.Fatalf("%s without client certificate: %v", alpn, err)
		}
	}
}

func TestServerPairALPNAdmitsAnyKey(t *testing.T) {
	f := newFixture(t)
	got, err := connect(t, f.addr, ClientTLSConfig(newTestIdentity(t), f.camera.Fingerprint, testPairALPN))
	if err != nil || got != testPairALPN {
		t.Fatalf("pairing ALPN: %q, %v", got, err)
	}
}

func TestServerRefusesUnknownALPN(t *testing.T) {
	f := newFixture(t)
	_, err := connect(t, f.addr, ClientTLSConfig(newTestIdentity(t), f.camera.Fingerprint, "other/1"))
	if !isHandshakeRefusal(err) {
		t.Fatalf("unknown ALPN: %v", err)
	}
}

// A client offering both protocols gets the stricter video policy.
func TestServerBothALPNsGetVideoPolicy(t *testing.T) {
	f := newFixture(t)
	conf := ClientTLSConfig(newTestIdentity(t), f.camera.Fingerprint, testPairALPN)
	conf.NextProtos = []string{testPairALPN, testVideoALPN}
	if _, err := connect(t, f.addr, conf); !isHandshakeRefusal(err) {
		t.Fatalf("unpaired client offering both ALPNs: %v", err)
	}
}

// A viewer pinned to one camera must refuse any other key at that address,
// as it would a machine in the middle.
func TestClientRefusesWrongCamera(t *testing.T) {
	f := newFixture(t)
	viewer := newTestIdentity(t)
	mustAdd(t, f.viewers, "phone", viewer.Fingerprint)
	impostor := newTestIdentity(t)
	for _, pin := range []string{impostor.Fingerprint, "garbage"} {
		_, err := connect(t, f.addr, ClientTLSConfig(viewer, pin, testVideoALPN))
		if !errors.Is(err, ErrPinMismatch) {
			t.Fatalf("pin %q: %v, want ErrPinMismatch", pin, err)
		}
	}
}

// Session resumption would skip the client certificate; the server must
// not issue tickets.
func TestServerIssuesNoSessionTickets(t *testing.T) {
	f := newFixture(t)
	viewer := newTestIdentity(t)
	mustAdd(t, f.viewers, "phone", viewer.Fingerprint)
	cache := &recordingCache{}
	conf := ClientTLSConfig(viewer, f.camera.Fingerprint, testVideoALPN)
	conf.ClientSessionCache = cache
	if _, err := connect(t, f.addr, conf); err != nil {
		t.Fatal(err)
	}
	if n := cache.puts.Load(); n > 0 {
		t.Fatalf("server issued %d session tickets", n)
	}
}

// recordingCache counts the session tickets a client is given.
type recordingCache struct{ puts atomic.Int32 }

func (c *recordingCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (c *recordingCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
}

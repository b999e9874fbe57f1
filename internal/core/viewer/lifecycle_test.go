package viewer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/internal/feature/identity"
)

// quicServer is a plain QUIC server on loopback (ALPN "t") whose accepted
// connections arrive on the returned channel.
func quicServer(t *testing.T) (netip.AddrPort, <-chan *quic.Conn) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos: []string{"t"}}, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := make(chan *quic.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String()), conns
}

var testClientTLS = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"t"}}

// TestLinkLifecycle: Close returns once the link has released everything
// (Done closed, Err nil), and a connection the camera closes ends the link
// with the camera's error as Err; for direct and relayed links alike.
func TestLinkLifecycle(t *testing.T) {
	testtier.Slow(t, "QUIC links on loopback")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr, accepted := quicServer(t)
	dials := map[string]func(t *testing.T) *Link{
		"direct": func(t *testing.T) *Link {
			conn, err := quic.DialAddr(ctx, addr.String(), testClientTLS, &quic.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return directLink(conn, logging.Discard(nil))
		},
		"relayed": func(t *testing.T) *Link {
			l, err := dialRelayed(ctx, addr, netip.AddrPort{}, testClientTLS, &quic.Config{}, logging.Discard(nil))
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
	}
	for name, dial := range dials {
		t.Run(name+"/Close", func(t *testing.T) {
			l := dial(t)
			<-accepted
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			select {
			case <-l.Done():
			default:
				t.Fatal("Done not closed when Close returned")
			}
			if err := l.Err(); err != nil {
				t.Errorf("Err after Close: %v, want nil", err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
		t.Run(name+"/camera closes", func(t *testing.T) {
			l := dial(t)
			defer l.Close()
			(<-accepted).CloseWithError(7, "gone")
			select {
			case <-l.Done():
			case <-ctx.Done():
				t.Fatal("Done not closed after the camera closed the connection")
			}
			var ae *quic.ApplicationError
			if err := l.Err(); !errors.As(err, &ae) || ae.ErrorCode != 7 || !ae.Remote {
				t.Errorf("Err %v, want the camera's application error 7", err)
			}
		})
	}
}

// TestSessionWithoutCamera: a session that cannot connect has no report,
// unless it resumes (then its summary says so, as `camagent view --resume`
// prints it); an unknown route is refused before dialling.
func TestSessionWithoutCamera(t *testing.T) {
	id, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := Session{Dialer: Dialer{Identity: id, Route: RouteDirect}, Camera: identity.Camera{Name: "nowhere"}}
	rep, err := s.Watch(ctx, Options{})
	if err == nil || !strings.Contains(err.Error(), "no known address") || rep != nil {
		t.Fatalf("Watch: %+v, %v; want no report and no known address", rep, err)
	}
	s.Resume = true
	rep, err = s.Watch(ctx, Options{})
	if err == nil || rep == nil || rep.ResumeStats == nil {
		t.Fatalf("resuming Watch: %+v, %v; want a report with resume figures and the error", rep, err)
	}
	s.Dialer.Route = "sideways"
	if _, err := s.Watch(ctx, Options{}); err == nil || !strings.Contains(err.Error(), "want auto, direct or relay") {
		t.Fatalf("unknown route: %v", err)
	}
}

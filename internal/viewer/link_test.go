package viewer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/logging"
	"github.com/camagent/camagent/p2p/natwire"
)

// TestRelayedLinkProbesPeerReflexivePunch: a punch reaching a relayed
// link's socket from a port the camera never advertised (its symmetric
// NAT's mapping toward this viewer) must reach NAT traversal, which then
// probes that address. The link's socket once dropped such punches, so a
// symmetric camera never went direct to a public or full-cone viewer (the
// NAT matrix found it).
func TestRelayedLinkProbesPeerReflexivePunch(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	// The "relay": a QUIC server the link dials as it would a relay's
	// public address for the camera.
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos: []string{"t"}}, &quic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		for {
			c, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			defer c.CloseWithError(0, "")
		}
	}()
	relay := netip.MustParseAddrPort(ln.Addr().String())
	l, err := dialRelayed(ctx, relay, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"t"}}, &quic.Config{}, logging.Discard(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Conn.CloseWithError(0, "")
	camera, viewerEnd := natwire.NewPipe()
	defer camera.Close()
	if err := l.StartTraversal(viewerEnd, nil); err != nil {
		t.Fatal(err)
	}
	// The camera advertises an address on 127.0.0.1; its punches come
	// from another port of that address.
	if err := camera.Send(&natwire.AddAddress{Seq: 1, Addr: netip.AddrPortFrom(relay.Addr(), 9)}); err != nil {
		t.Fatal(err)
	}
	mapping, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer mapping.Close()
	port := l.sock.LocalAddr().(*net.UDPAddr).Port
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	// Packet { Zero (8) = 0, Magic (24) = "cam", Kind (8) = 'p', Token (64) }
	punch := []byte{0, 'c', 'a', 'm', 'p', 0, 0, 0, 0, 0, 0, 0, 1}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := mapping.WriteTo(punch, to); err != nil {
			t.Fatal(err)
		}
		mapping.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, from, err := mapping.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		if from.Port == port && n > 0 && buf[0]&0x40 != 0 {
			return // a QUIC probe of the learned address
		}
	}
	t.Fatal("the viewer never probed the address the camera's punches came from")
}

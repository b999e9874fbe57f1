package stream

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/base/testtier"
)

// testTimeout bounds every wait in these tests; it is a failure deadline,
// never a pacing sleep.
const testTimeout = 20 * time.Second

var testTrack = media.Track{
	Codec: media.CodecH264, Width: 1280, Height: 720, FPS: 30,
	SPS: []byte{0x67, 0x42, 0xc0, 0x1f}, PPS: []byte{0x68, 0xce, 0x3c, 0x80},
}

// selfSignedTLS returns a server TLS config with a fresh ECDSA certificate.
func selfSignedTLS(tb testing.TB) *tls.Config {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{ALPN},
	}
}

// testEnv is a hub behind a real quic-go listener on loopback.
type testEnv struct {
	tb   testing.TB
	hub  *Hub
	ln   *quic.Listener
	ctx  context.Context
	mu   sync.Mutex
	errs map[string]chan error // Serve result per viewer name
	opts []ServeOption         // passed to every Serve
}

func newTestEnv(tb testing.TB, cfg HubConfig, opts ...ServeOption) *testEnv {
	tb.Helper()
	testtier.Slow(tb, "a stream hub over QUIC on loopback")
	if cfg.CameraName == "" {
		cfg.CameraName = "test-camera"
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", selfSignedTLS(tb), nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &testEnv{tb: tb, hub: NewHub(cfg), ln: ln, ctx: ctx, errs: make(map[string]chan error), opts: opts}
	var wg sync.WaitGroup
	wg.Go(func() { e.acceptLoop(&wg) })
	tb.Cleanup(func() {
		cancel()
		_ = e.hub.Close()
		_ = ln.Close()
		wg.Wait()
	})
	return e
}

// acceptLoop serves every connection; the viewer's name is the client's
// UDP port, which the test learns from its own connection.
func (e *testEnv) acceptLoop(wg *sync.WaitGroup) {
	for {
		conn, err := e.ln.Accept(e.ctx)
		if err != nil {
			return
		}
		viewer := viewerName(conn.RemoteAddr())
		done := e.serveResult(viewer)
		wg.Go(func() { done <- e.hub.Serve(e.ctx, conn, viewer, e.opts...) })
	}
}

func viewerName(addr net.Addr) string {
	return fmt.Sprintf("viewer-%d", addr.(*net.UDPAddr).Port)
}

func (e *testEnv) serveResult(viewer string) chan error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.errs[viewer] == nil {
		e.errs[viewer] = make(chan error, 1)
	}
	return e.errs[viewer]
}

// dial opens a QUIC connection to the hub; conf may be nil.
func (e *testEnv) dial(conf *quic.Config) *quic.Conn {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}} // tests only
	conn, err := quic.DialAddr(ctx, e.ln.Addr().String(), tlsConf, conf)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { _ = conn.CloseWithError(0, "") })
	return conn
}

func (e *testEnv) client() *Client {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := NewClient(ctx, e.dial(nil), "test-viewer/1")
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { _ = c.Close() })
	return c
}

// syntheticAU is access unit i of a 30 fps stream with a key frame every
// 30 frames; the payload encodes i so that receivers can check it.
func syntheticAU(i, keySize, deltaSize int) media.AccessUnit {
	key := i%30 == 0
	size := deltaSize
	if key {
		size = keySize
	}
	data := bytes.Repeat([]byte{byte(i)}, max(size, 8))
	binary.BigEndian.PutUint32(data, uint32(i))
	return media.AccessUnit{
		Codec:    media.CodecH264,
		Data:     data,
		Key:      key,
		PTS:      time.Duration(i) * 33_333 * time.Microsecond, // the wire carries µs
		Captured: time.UnixMicro(1_790_000_000_000_000 + int64(i)*33_333),
	}
}

func smallAU(i int) media.AccessUnit { return syntheticAU(i, 3000, 300) }

// checkFrame compares a received frame with the access unit sent.
func checkFrame(tb testing.TB, got Frame, want media.AccessUnit) {
	tb.Helper()
	if got.Key != want.Key || got.PTS != want.PTS || !got.Captured.Equal(want.Captured) ||
		!bytes.Equal(got.Data, want.Data) || got.Codec != want.Codec {
		tb.Fatalf("frame mismatch: got key=%v pts=%v captured=%v codec=%s %d bytes (#%d); want key=%v pts=%v #%d",
			got.Key, got.PTS, got.Captured, got.Codec, len(got.Data), frameIndex(got.Data),
			want.Key, want.PTS, frameIndex(want.Data))
	}
}

func frameIndex(data []byte) int {
	if len(data) < 4 {
		return -1
	}
	return int(binary.BigEndian.Uint32(data))
}

func readFrame(tb testing.TB, c *Client) Frame {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	f, err := c.ReadFrame(ctx)
	if err != nil {
		tb.Fatalf("ReadFrame: %v", err)
	}
	return f
}

func waitClosed(tb testing.TB, conn *quic.Conn) error {
	tb.Helper()
	select {
	case <-conn.Context().Done():
		return context.Cause(conn.Context())
	case <-time.After(testTimeout):
		tb.Fatal("connection not closed")
		return nil
	}
}

func describe(err error) string {
	if code, ok := ErrorCode(err); ok {
		return fmt.Sprintf("%v (%v)", code, err)
	}
	return fmt.Sprint(err)
}

package pairing

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/quic-go/quic-go"
)

// testVideoALPN stands in for the stream package's ALPN.
const testVideoALPN = "test-video/1"

// camera is a running agent in miniature: one QUIC listener whose TLS
// layer splits video and pairing by ALPN, as the real agent does.
type camera struct {
	id      *identity.Identity
	viewers *identity.ViewerStore
	codes   *CodeStore
	clock   *clock
	addr    string
	served  chan error // one result per pairing connection
	relays  RelaysFunc // nil: a camera without relays
}

// startCamera starts a camera; opts change it before it accepts.
func startCamera(t *testing.T, opts ...func(*camera)) *camera {
	t.Helper()
	testtier.Slow(t, "the pairing exchange over QUIC on loopback")
	dir := t.TempDir()
	id, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	viewers, err := identity.OpenViewerStore(identity.ViewersPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	c := &camera{id: id, viewers: viewers, clock: newClock(), served: make(chan error, 16)}
	c.codes = openCodes(t, CodesPath(dir), c.clock)
	ln, err := quic.ListenAddr("127.0.0.1:0", identity.ServerTLSConfig(id, viewers, testVideoALPN, ALPN, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c.addr = ln.Addr().String()
	for _, o := range opts {
		o(c)
	}
	go c.acceptLoop(ln)
	return c
}

func (c *camera) acceptLoop(ln *quic.Listener) {
	for {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		switch conn.ConnectionState().TLS.NegotiatedProtocol {
		case ALPN:
			go func() {
				_, err := Serve(context.Background(), conn, c.codes, c.viewers, "porch", c.relays)
				c.served <- err
			}()
		case testVideoALPN:
			go greet(conn)
		}
	}
}

// greet admits a video viewer with one uni stream, standing in for video.
func greet(conn *quic.Conn) {
	if s, err := conn.OpenUniStream(); err == nil {
		s.Write([]byte("video"))
		s.Close()
	}
	<-conn.Context().Done()
}

func (c *camera) offer(t *testing.T, viewerName string) Offer {
	t.Helper()
	issued, err := c.codes.Create(viewerName, 0)
	if err != nil {
		t.Fatal(err)
	}
	return Offer{Name: "porch", Fingerprint: c.id.Fingerprint, Code: issued.Code, Addrs: []string{c.addr}}
}

// serveResult waits for the camera's side of one pairing connection.
func (c *camera) serveResult(t *testing.T) error {
	t.Helper()
	select {
	case err := <-c.served:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("camera never finished serving")
		return nil
	}
}

type viewer struct {
	id      *identity.Identity
	cameras *identity.CameraStore
}

func newViewer(t *testing.T) viewer {
	t.Helper()
	dir := t.TempDir()
	id, err := identity.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	cams, err := identity.OpenCameraStore(identity.CamerasPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	return viewer{id: id, cameras: cams}
}

func (v viewer) join(t *testing.T, o Offer, name string) (identity.Camera, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return Join(ctx, o, v.id, name, v.cameras)
}

// watch opens a video connection and reports whether the camera admitted
// it. Refusals can surface at dial or first read (TLS 1.3 clients finish
// before the server has checked their certificate).
func watch(t *testing.T, c *camera, v viewer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conf := identity.ClientTLSConfig(v.id, c.id.Fingerprint, testVideoALPN)
	conn, err := quic.DialAddr(ctx, c.addr, conf, nil)
	if err != nil {
		return err
	}
	defer conn.CloseWithError(0, "")
	s, err := conn.AcceptUniStream(ctx)
	if err != nil {
		return err
	}
	_, err = io.ReadAll(s)
	return err
}

func isHandshakeRefusal(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.ErrorCode.IsCryptoError()
}

func TestPairThenWatch(t *testing.T) {
	cam := startCamera(t)
	phone := newViewer(t)
	if err := watch(t, cam, phone); !isHandshakeRefusal(err) {
		t.Fatalf("before pairing: %v, want handshake refusal", err)
	}

	got, err := phone.join(t, cam.offer(t, ""), "phone")
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.serveResult(t); err != nil {
		t.Fatalf("camera side: %v", err)
	}
	if got.Name != "porch" || got.Fingerprint != cam.id.Fingerprint || got.Addrs[0] != cam.addr {
		t.Fatalf("Join returned %+v", got)
	}
	saved, err := phone.cameras.Get("porch")
	if err != nil || saved.Fingerprint != cam.id.Fingerprint {
		t.Fatalf("cameras.json: %+v, %v", saved, err)
	}
	v, ok := cam.viewers.Allowed(phone.id.Fingerprint)
	if !ok || v.Name != "phone" {
		t.Fatalf("viewers.json: %+v, %v", v, ok)
	}

	if err := watch(t, cam, phone); err != nil {
		t.Fatalf("paired viewer refused: %v", err)
	}
	stranger := newViewer(t)
	if err := watch(t, cam, stranger); !isHandshakeRefusal(err) {
		t.Fatalf("unpaired viewer: %v, want handshake refusal", err)
	}

	if _, err := cam.viewers.Revoke("phone"); err != nil {
		t.Fatal(err)
	}
	if err := watch(t, cam, phone); !isHandshakeRefusal(err) {
		t.Fatalf("revoked viewer: %v, want handshake refusal", err)
	}
}

func TestCodeNamesViewer(t *testing.T) {
	cam := startCamera(t)
	v := newViewer(t)
	if _, err := v.join(t, cam.offer(t, "grandma's tablet"), "whatever"); err != nil {
		t.Fatal(err)
	}
	cam.serveResult(t)
	if got, _ := cam.viewers.Allowed(v.id.Fingerprint); got.Name != "grandma's tablet" {
		t.Fatalf("viewer saved as %q", got.Name)
	}
}

func TestJoinRefused(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, cam *camera) Offer
		want    error
	}{
		{"wrong code", func(t *testing.T, cam *camera) Offer {
			o := cam.offer(t, "")
			o.Code = wrongCode(t, o.Code)
			return o
		}, ErrCodeInvalid},
		{"expired code", func(t *testing.T, cam *camera) Offer {
			o := cam.offer(t, "")
			cam.clock.Advance(DefaultCodeTTL + time.Second)
			return o
		}, ErrCodeExpired},
		{"used code", func(t *testing.T, cam *camera) Offer {
			o := cam.offer(t, "")
			if _, err := newViewer(t).join(t, o, "first"); err != nil {
				t.Fatal(err)
			}
			cam.serveResult(t)
			return o
		}, ErrCodeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cam := startCamera(t)
			o := tc.prepare(t, cam)
			late := newViewer(t)
			_, err := late.join(t, o, "late")
			if !errors.Is(err, tc.want) {
				t.Fatalf("Join: %v, want %v", err, tc.want)
			}
			if err := cam.serveResult(t); !errors.Is(err, tc.want) {
				t.Fatalf("camera side: %v, want %v", err, tc.want)
			}
			if _, ok := cam.viewers.Allowed(late.id.Fingerprint); ok {
				t.Fatal("refused viewer was registered")
			}
			if _, err := late.cameras.Get("porch"); !errors.Is(err, identity.ErrNotFound) {
				t.Fatalf("refused viewer saved the camera: %v", err)
			}
		})
	}
}

func TestJoinBruteForceBurnsCode(t *testing.T) {
	cam := startCamera(t)
	o := cam.offer(t, "")
	attacker := newViewer(t)
	for range MaxFailuresPerCode {
		guess := o
		guess.Code = wrongCode(t, o.Code)
		if _, err := attacker.join(t, guess, "mallory"); !errors.Is(err, ErrCodeInvalid) {
			t.Fatalf("guess: %v", err)
		}
		cam.serveResult(t)
	}
	if _, err := newViewer(t).join(t, o, "owner"); !errors.Is(err, ErrCodeBurned) {
		t.Fatalf("owner after brute force: %v, want ErrCodeBurned", err)
	}
}

// A viewer given the wrong fingerprint (or facing a machine in the middle)
// must not talk to the camera at all: the code is not even sent.
func TestJoinRefusesWrongCameraKey(t *testing.T) {
	cam := startCamera(t)
	o := cam.offer(t, "")
	genuine := o.Fingerprint
	o.Fingerprint = newViewer(t).id.Fingerprint // some other key
	v := newViewer(t)
	_, err := v.join(t, o, "phone")
	if !errors.Is(err, identity.ErrPinMismatch) {
		t.Fatalf("Join with wrong pin: %v, want ErrPinMismatch", err)
	}
	if list, _ := cam.viewers.List(); len(list) != 0 {
		t.Fatalf("camera registered %+v", list)
	}
	// The code was never revealed, so it still works with the right pin.
	o.Fingerprint = genuine
	if _, err := v.join(t, o, "phone"); err != nil {
		t.Fatalf("Join with the right pin: %v", err)
	}
}

func TestJoinTriesAddressesInTurn(t *testing.T) {
	cam := startCamera(t)
	impostor := startCamera(t) // a different device at a stale address
	o := cam.offer(t, "")
	o.Addrs = []string{impostor.addr, cam.addr}
	if _, err := newViewer(t).join(t, o, "phone"); err != nil {
		t.Fatalf("Join: %v", err)
	}
	o2 := cam.offer(t, "")
	o2.Addrs = []string{impostor.addr}
	if _, err := newViewer(t).join(t, o2, "tv"); !errors.Is(err, identity.ErrPinMismatch) {
		t.Fatalf("only the impostor: %v", err)
	}
}

// rawExchange speaks the pairing protocol by hand, to send what Join
// never would.
func rawExchange(t *testing.T, cam *camera, payload []byte) (reply, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, cam.addr, identity.ClientTLSConfig(newViewer(t).id, cam.id.Fingerprint, ALPN), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	str.Write(payload)
	str.Close()
	raw, err := io.ReadAll(str)
	if err != nil {
		return reply{}, err
	}
	var r reply
	return r, json.Unmarshal(raw, &r)
}

func TestServeBadRequests(t *testing.T) {
	tests := map[string][]byte{
		"garbage":       []byte("hello"),
		"wrong version": []byte(`{"v":2,"code":"` + testCode + `"}`),
		"control name":  []byte(`{"v":1,"code":"` + testCode + `","name":"\u001b[2J"}`),
		"oversized":     make([]byte, maxMessage+100),
	}
	for name, payload := range tests {
		t.Run(name, func(t *testing.T) {
			cam := startCamera(t)
			r, err := rawExchange(t, cam, payload)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || r.Error != "bad_request" {
				t.Fatalf("reply %+v", r)
			}
			if err := cam.serveResult(t); !errors.Is(err, ErrBadRequest) {
				t.Fatalf("camera side: %v", err)
			}
		})
	}
}

// A client that starts a request and then stalls must not hold the
// camera's handler beyond the exchange deadline.
func TestServeStalledClientTimesOut(t *testing.T) {
	defer func(d time.Duration) { exchangeTimeout = d }(exchangeTimeout)
	exchangeTimeout = 300 * time.Millisecond
	cam := startCamera(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, cam.addr, identity.ClientTLSConfig(newViewer(t).id, cam.id.Fingerprint, ALPN), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	str.Write([]byte(`{"v":1,`)) // and never finish
	if err := cam.serveResult(t); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("stalled client: %v", err)
	}
}

func TestServeRequiresPairingALPN(t *testing.T) {
	// Serve double-checks the ALPN even though the agent routes by it.
	cam := startCamera(t)
	v := newViewer(t)
	if _, err := cam.viewers.Add("phone", v.id.Fingerprint); err != nil {
		t.Fatal(err)
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", identity.ServerTLSConfig(cam.id, cam.viewers, testVideoALPN, ALPN, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	result := make(chan error, 1)
	go func() {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			result <- err
			return
		}
		_, err = Serve(context.Background(), conn, cam.codes, cam.viewers, "porch", nil)
		result <- err
	}()
	conf := identity.ClientTLSConfig(v.id, cam.id.Fingerprint, testVideoALPN)
	if conn, err := quic.DialAddr(t.Context(), ln.Addr().String(), conf, nil); err == nil {
		defer conn.CloseWithError(0, "")
	}
	if err := <-result; !errors.Is(err, ErrBadRequest) {
		t.Fatalf("Serve on a video connection: %v", err)
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{`{"v":1,"code":"7kq2m9xd4trw","name":"phone"}`, nil},
		{`{"v":1,"code":"7KQ2-M9XD-4TRW"}`, nil},
		{`{"v":1,"code":"nope"}`, ErrCodeInvalid},
		{`{"v":0,"code":"7KQ2-M9XD-4TRW"}`, ErrBadRequest},
		{`{"v":1,"code":"7KQ2-M9XD-4TRW","name":""}`, nil},
		{`{"v":1,"code":"7KQ2-M9XD-4TRW","name":" x"}`, ErrBadRequest},
		{`[]`, ErrBadRequest},
		{``, ErrBadRequest},
	}
	for _, tc := range tests {
		r, err := parseRequest([]byte(tc.in))
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("parseRequest(%s) = %+v, %v; want %v", tc.in, r, err, tc.want)
		}
		if err == nil && r.Code != testCode {
			t.Errorf("code not normalised: %q", r.Code)
		}
	}
}

func TestParseReply(t *testing.T) {
	for name, want := range wireErrors {
		raw, _ := json.Marshal(reply{Error: name})
		if _, err := parseReply(raw); !errors.Is(err, want) {
			t.Errorf("reply %q: %v, want %v", name, err, want)
		}
	}
	if _, err := parseReply([]byte(`{"ok":false,"error":"???"}`)); !errors.Is(err, ErrProtocol) {
		t.Errorf("unknown error name: %v", err)
	}
	if r, err := parseReply([]byte(`{"ok":true,"camera":"porch"}`)); err != nil || r.Camera != "porch" {
		t.Errorf("ok reply: %+v, %v", r, err)
	}
}

func TestWireNameHidesDetails(t *testing.T) {
	if got := wireName(errors.New("disk full at /var/lib/camagent")); got != "internal" {
		t.Fatalf("wireName leaked %q", got)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"v":1,"code":"7KQ2-M9XD-4TRW","name":"phone"}`))
	f.Add([]byte(`{"v":1,"code":"oil0oil0oil0"}`))
	f.Add([]byte(`{"v":1,"code":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err != nil {
			return
		}
		if _, err := NormalizeCode(r.Code); err != nil {
			t.Fatalf("accepted code %q does not normalise", r.Code)
		}
		if r.Name != "" && identity.CheckName(r.Name) != nil {
			t.Fatalf("accepted bad name %q", r.Name)
		}
	})
}

func FuzzParseReply(f *testing.F) {
	f.Add([]byte(`{"ok":true,"camera":"porch","viewer":"phone"}`))
	f.Add([]byte(`{"ok":false,"error":"code_invalid"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseReply(b)
		if err == nil && !r.OK {
			t.Fatal("non-ok reply parsed without error")
		}
	})
}

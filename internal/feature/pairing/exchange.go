package pairing

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/camagent/camagent/internal/base/dialrace"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/quic-go/quic-go"
)

// Bounds on the exchange. Pairing is one tiny request and reply; anything
// bigger or slower is not a viewer.
const (
	maxMessage       = 1024
	maxReply         = 8 << 10 // a reply carries up to 8 relay URLs
	dialTimeout      = 5 * time.Second
	lingerTimeout    = 5 * time.Second
	requestVersion   = 1
	defaultViewerTag = "viewer"
)

// exchangeTimeout bounds a whole exchange, from accepting the stream to the
// reply. A variable so that tests need not wait for it.
var exchangeTimeout = 30 * time.Second

// request is the viewer's single message: {"v":1,"code":"...","name":"..."}
// to pair, or {"v":1,"op":"relays"} from a viewer already paired, for its
// current relay URLs (its own locator secrets, docs/relay.md).
type request struct {
	V    int    `json:"v"`
	Op   string `json:"op,omitempty"` // "" (pair) or opRelays
	Code string `json:"code,omitempty"`
	Name string `json:"name,omitempty"`
}

// opRelays asks for the viewer's relay URLs; the key presented in the
// handshake must be paired.
const opRelays = "relays"

// reply is the camera's single message.
type reply struct {
	OK     bool   `json:"ok"`
	Camera string `json:"camera,omitempty"` // camera name
	Viewer string `json:"viewer,omitempty"` // name the viewer was saved under
	// Relays are the camera's relay URLs with this viewer's own locator
	// secrets (rv=), which replace the offer's one-time ones.
	Relays []string `json:"relays,omitempty"`
	Error  string   `json:"error,omitempty"` // key of wireErrors
}

// RelaysFunc gives the relay URLs, with its own locator secrets, that a
// paired viewer keeps (nil, nil without relays).
type RelaysFunc func(v identity.Viewer) ([]string, error)

// Outcome is what a served exchange did.
type Outcome struct {
	Viewer identity.Viewer
	// Refresh: a paired viewer fetched its relay URLs; nothing changed.
	Refresh bool
}

// parseRequest decodes and validates a request. The code is normalised;
// shape errors wrap ErrBadRequest.
func parseRequest(b []byte) (request, error) {
	var r request
	if len(b) > maxMessage {
		return request{}, fmt.Errorf("%w: longer than %d bytes", ErrBadRequest, maxMessage)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return request{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if r.V != requestVersion {
		return request{}, fmt.Errorf("%w: version %d", ErrBadRequest, r.V)
	}
	switch r.Op {
	case "":
	case opRelays:
		return r, nil
	default:
		return request{}, fmt.Errorf("%w: op %q", ErrBadRequest, r.Op)
	}
	code, err := NormalizeCode(r.Code)
	if err != nil {
		// A malformed code is a wrong code, and reported as one.
		return request{}, ErrCodeInvalid
	}
	r.Code = code
	if r.Name != "" {
		if err := identity.CheckName(r.Name); err != nil {
			return request{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
	}
	return r, nil
}

// parseReply decodes a camera's reply into the viewer-side result.
func parseReply(b []byte) (reply, error) {
	var r reply
	if len(b) > maxReply {
		return reply{}, fmt.Errorf("%w: longer than %d bytes", ErrProtocol, maxReply)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return reply{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if !r.OK {
		if err, ok := wireErrors[r.Error]; ok {
			return reply{}, err
		}
		return reply{}, fmt.Errorf("%w: unknown error %q", ErrProtocol, r.Error)
	}
	return r, nil
}

// readMessage reads one whole message of at most limit bytes: the peer
// sends it and closes its side of the stream.
func readMessage(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: message longer than %d bytes", ErrBadRequest, limit)
	}
	return b, nil
}

// Serve runs the camera's side of one pairing connection (ALPN ALPN,
// already past a handshake with ServerTLSConfig): it accepts one stream,
// reads the request, redeems the code, registers the key the viewer
// presented in the handshake and replies, with the viewer's own relay URLs
// from relays (which may be nil). A paired viewer may instead ask for
// those URLs alone (op "relays"). It closes the connection, with an
// application error code on failure, and returns the viewer as saved.
func Serve(ctx context.Context, conn *quic.Conn, codes *CodeStore, viewers *identity.ViewerStore, cameraName string, relays RelaysFunc) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	tlsState := conn.ConnectionState().TLS
	fp := identity.PeerFingerprint(tlsState)
	if tlsState.NegotiatedProtocol != ALPN || fp == "" {
		err := fmt.Errorf("%w: wrong protocol or no client certificate", ErrBadRequest)
		conn.CloseWithError(CloseBadRequest, "bad request")
		return Outcome{}, err
	}
	str, err := conn.AcceptStream(ctx)
	if err != nil {
		conn.CloseWithError(CloseBadRequest, "no request")
		return Outcome{}, fmt.Errorf("pairing: accept stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		str.SetDeadline(dl)
	}
	out, result := handle(str, fp, codes, viewers)
	r := reply{OK: result == nil, Camera: cameraName, Viewer: out.Viewer.Name}
	if result == nil && relays != nil {
		var err error
		if r.Relays, err = relays(out.Viewer); err != nil && out.Refresh {
			result = fmt.Errorf("%w: relay urls: %v", ErrInternal, err)
		}
		// A new pairing stands without them: the viewer keeps the
		// offer's and asks again later.
	}
	answer(str, r, result)
	linger(ctx, conn)
	conn.CloseWithError(closeCode(result), closeReason(result))
	return out, result
}

// handle reads and acts on the request. Only after the code is consumed is
// the key registered, so a refused request leaves viewers.json untouched.
func handle(str *quic.Stream, fp string, codes *CodeStore, viewers *identity.ViewerStore) (Outcome, error) {
	raw, err := readMessage(str, maxMessage)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	req, err := parseRequest(raw)
	if err != nil {
		return Outcome{}, err
	}
	if req.Op == opRelays {
		v, ok := viewers.Allowed(fp)
		if !ok {
			return Outcome{}, ErrNotPaired
		}
		return Outcome{Viewer: v, Refresh: true}, nil
	}
	grant, err := codes.Redeem(req.Code)
	if err != nil {
		return Outcome{}, err
	}
	name := cmp.Or(grant.Viewer, req.Name, defaultViewerTag)
	v, err := viewers.Add(name, fp)
	if err != nil {
		return Outcome{}, fmt.Errorf("%w: %v", ErrInternal, err)
	}
	return Outcome{Viewer: v}, nil
}

// answer writes the reply and closes the camera's side of the stream.
func answer(str *quic.Stream, r reply, result error) {
	if result != nil {
		r = reply{Error: wireName(result)}
	}
	b, _ := json.Marshal(r)
	str.Write(b)
	str.Close()
}

// linger waits for the viewer to hang up after reading the reply: closing
// the connection at once could discard the reply still in flight.
func linger(ctx context.Context, conn *quic.Conn) {
	t := time.NewTimer(lingerTimeout)
	defer t.Stop()
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
	case <-t.C:
	}
}

func closeReason(err error) string {
	if err == nil {
		return "paired"
	}
	return wireName(err)
}

// relayHeadStart is how long the offer's direct addresses have to
// themselves before Join also looks the camera up through its relays: on a
// LAN the direct address answers within milliseconds; behind NAT it never
// answers, and waiting for its timeout would only delay pairing.
const relayHeadStart = 300 * time.Millisecond

// Join runs the viewer's side: it dials the offer's addresses (all at
// once) and, after a short head start or as soon as they fail, the camera
// through each of the offer's relays (the relay says where the camera's
// registration is, and the same QUIC + TLS goes to that public address; the
// camera serves the pairing ALPN there as on its own port). It accepts only
// the camera whose key matches offer.Fingerprint, presents id's
// certificate (the key the camera will register), sends the code on the
// first connection that completes its handshake and on success saves the
// camera in cameras. viewerName may be "" if the code names the viewer.
func Join(ctx context.Context, offer Offer, id *identity.Identity, viewerName string, cameras *identity.CameraStore) (identity.Camera, error) {
	if viewerName != "" {
		if err := identity.CheckName(viewerName); err != nil {
			return identity.Camera{}, err
		}
	}
	attempts, err := joinAttempts(offer, id)
	if err != nil {
		return identity.Camera{}, err
	}
	conn, _, err := dialrace.First(ctx, dialrace.Config[*quic.Conn]{
		HeadStart: relayHeadStart,
		Discard:   func(c *quic.Conn) { c.CloseWithError(CloseOK, "") },
	}, attempts)
	if err != nil {
		// Another address may have reached the real camera (a stale LAN
		// address, or a different device answering there): all failed.
		return identity.Camera{}, fmt.Errorf("pairing: the camera was not reached: %w", err)
	}
	req := request{V: requestVersion, Code: offer.Code, Name: viewerName}
	r, err := exchange(ctx, conn, req)
	conn.CloseWithError(CloseOK, "")
	if err != nil {
		return identity.Camera{}, err
	}
	return saveCamera(offer, r, cameras)
}

// joinAttempts are the ways to the camera, in order of preference: its
// addresses (direct, and public at its relays) raced together, then each
// relay's lookup.
func joinAttempts(offer Offer, id *identity.Identity) ([]dialrace.Attempt[*quic.Conn], error) {
	var attempts []dialrace.Attempt[*quic.Conn]
	// The relay addresses are dialled like direct ones: to the viewer
	// they are just UDP addresses, and trying them costs nothing.
	if addrs := slices.Concat(offer.Addrs, offer.RelayAddrs); len(addrs) > 0 {
		attempts = append(attempts, dialrace.Attempt[*quic.Conn]{Name: "direct", Dial: func(ctx context.Context) (*quic.Conn, error) {
			var direct []dialrace.Attempt[*quic.Conn]
			for _, addr := range addrs {
				direct = append(direct, dialrace.Attempt[*quic.Conn]{Name: addr, Dial: func(ctx context.Context) (*quic.Conn, error) {
					return dial(ctx, addr, offer.Fingerprint, id)
				}})
			}
			conn, _, err := dialrace.First(ctx, dialrace.Config[*quic.Conn]{
				Discard: func(c *quic.Conn) { c.CloseWithError(CloseOK, "") },
			}, direct)
			return conn, err
		}})
	}
	var bad []error
	for _, s := range offer.Relays {
		r, err := relayclient.ParseRelayURL(s)
		if err == nil && r.Secret == nil {
			err = fmt.Errorf("relay %s: no camera locator (rv=)", r.Addr)
		}
		if err != nil {
			bad = append(bad, err)
			continue
		}
		attempts = append(attempts, dialrace.Attempt[*quic.Conn]{Name: "relay " + r.Addr, Dial: func(ctx context.Context) (*quic.Conn, error) {
			pub, err := locateNewCode(ctx, r)
			if err != nil {
				return nil, err
			}
			conn, err := dial(ctx, pub.String(), offer.Fingerprint, id)
			if err != nil {
				return nil, fmt.Errorf("camera at %s: %w", pub, err)
			}
			return conn, nil
		}})
	}
	if len(attempts) == 0 {
		return nil, fmt.Errorf("pairing: offer has no usable address or relay: %w", errors.Join(bad...))
	}
	return attempts, nil
}

// codeLocatorWait is how long Join keeps looking up an offer's locator
// that the relay does not know yet: the agent registers a new code's
// locator within a quarter of a second of `camagent pair` (docs/relay.md),
// and a viewer may scan the offer sooner.
const codeLocatorWait = 3 * time.Second

// locateNewCode locates the camera through r, retrying while the relay
// does not know the locator yet.
func locateNewCode(ctx context.Context, r relayclient.RelayURL) (netip.AddrPort, error) {
	deadline := time.Now().Add(codeLocatorWait)
	for {
		lctx, cancel := context.WithTimeout(ctx, dialTimeout)
		pub, err := relayclient.Locate(lctx, r, nil)
		cancel()
		if !errors.Is(err, relayclient.ErrNotRegistered) || time.Now().After(deadline) {
			return pub, err
		}
		select {
		case <-ctx.Done():
			return netip.AddrPort{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func dial(ctx context.Context, addr, fingerprint string, id *identity.Identity) (*quic.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conf := identity.ClientTLSConfig(id, fingerprint, ALPN)
	return quic.DialAddr(ctx, addr, conf, &quic.Config{HandshakeIdleTimeout: dialTimeout})
}

// exchange sends the request and reads the reply on one stream.
func exchange(ctx context.Context, conn *quic.Conn, req request) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return reply{}, fmt.Errorf("pairing: open stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		str.SetDeadline(dl)
	}
	b, _ := json.Marshal(req)
	if _, err := str.Write(b); err != nil {
		return reply{}, fmt.Errorf("pairing: send: %w", err)
	}
	str.Close()
	raw, err := readMessage(str, maxReply)
	if err != nil {
		return reply{}, fmt.Errorf("pairing: read reply: %w", err)
	}
	return parseReply(bytes.TrimSpace(raw))
}

func saveCamera(offer Offer, r reply, cameras *identity.CameraStore) (identity.Camera, error) {
	relays := offer.Relays
	if len(r.Relays) > 0 {
		relays = r.Relays // the offer's locators die with its code
	}
	cam := identity.Camera{
		Name:        cmp.Or(offer.Name, r.Camera),
		Fingerprint: offer.Fingerprint,
		Addrs:       offer.Addrs,
		Relays:      relays,
		PairedAt:    time.Now().UTC(),
	}
	if err := cameras.Add(cam); err != nil {
		return identity.Camera{}, fmt.Errorf("pairing: paired, but saving the camera failed: %w", err)
	}
	return cam, nil
}

// Refresh asks the paired camera cam for this viewer's current relay URLs
// (its own locator secrets; docs/relay.md) and saves them in cameras. It
// reaches the camera like Join (its addresses, then its relays with the
// locators the viewer has), so it works on the LAN after the viewer's
// locators stopped working (a camera re-keyed, or paired again), and
// through a relay whenever one of them still works.
func Refresh(ctx context.Context, cam identity.Camera, id *identity.Identity, cameras *identity.CameraStore) (identity.Camera, error) {
	attempts, err := joinAttempts(Offer{Name: cam.Name, Fingerprint: cam.Fingerprint, Addrs: cam.Addrs, Relays: cam.Relays}, id)
	if err != nil {
		return identity.Camera{}, err
	}
	conn, _, err := dialrace.First(ctx, dialrace.Config[*quic.Conn]{
		HeadStart: relayHeadStart,
		Discard:   func(c *quic.Conn) { c.CloseWithError(CloseOK, "") },
	}, attempts)
	if err != nil {
		return identity.Camera{}, fmt.Errorf("pairing: the camera was not reached: %w", err)
	}
	r, err := exchange(ctx, conn, request{V: requestVersion, Op: opRelays})
	conn.CloseWithError(CloseOK, "")
	if err != nil {
		return identity.Camera{}, err
	}
	if len(r.Relays) == 0 {
		return cam, nil // a camera without relays, or one that predates them
	}
	cam.Relays = r.Relays
	if err := cameras.Add(cam); err != nil {
		return identity.Camera{}, fmt.Errorf("pairing: saving the camera failed: %w", err)
	}
	return cam, nil
}

package relayserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v3"
	"github.com/quic-go/quic-go"
)

// The relay answers STUN Binding requests (RFC 8489) on its QUIC port, so
// that a viewer gets a second observation of its public address, next to
// the one the camera's registration port makes, and can tell whether its
// NAT maps endpoint-dependently (RFC 5780 §4.3; docs/relay.md, "Address
// observation"). STUN and QUIC share the port by first byte (RFC 7983 §7,
// RFC 9443 §3): quic-go hands packets whose two top bits are clear to
// Transport.ReadNonQUICPacket, and STUN's are always clear (RFC 8489 §5).

// The answers are rate-limited per source prefix (prefixlimit.go), not
// relay-wide, so that one sender cannot use up every viewer's answers: a
// Binding response goes to whatever source address the request claims, so
// without a limit the relay would reflect a spoofed flood, slightly
// amplified (a 20-byte request draws a 32-byte answer, 44 for IPv6). The
// default, 20 answers per second per prefix (Config.STUNRate), is far above
// what viewers need (a couple of requests per viewer per connection
// attempt) and, at under 100 bytes each, far below anything worth
// reflecting at one network. Answers go only to addresses the target
// policy admits (target.go), like everything else the relay sends.

// stunBufSize is larger than any Binding request worth answering; a packet
// that fills it may have been cut and is ignored.
const stunBufSize = 2048

// stunResponder reads the non-QUIC packets of the relay's transport and
// answers Binding requests. It runs from Serve until the transport closes
// or Serve's context ends; done is closed when it has stopped.
type stunResponder struct {
	tr      *quic.Transport
	limit   *prefixLimiter
	policy  *targetPolicy
	metrics *Metrics
	log     *slog.Logger
	done    chan struct{}
}

func newSTUNResponder(tr *quic.Transport, m *Metrics, log *slog.Logger, now func() time.Time, rate float64, policy *targetPolicy) *stunResponder {
	return &stunResponder{
		tr: tr, metrics: m, log: log, policy: policy,
		limit: newPrefixLimiter(rate, int(2*rate), now),
		done:  make(chan struct{}),
	}
}

// run answers requests until ReadNonQUICPacket fails, which it does only
// when ctx ends or the transport is closed.
func (r *stunResponder) run(ctx context.Context) {
	defer close(r.done)
	buf := make([]byte, stunBufSize)
	for {
		n, from, err := r.tr.ReadNonQUICPacket(ctx, buf)
		if err != nil {
			return
		}
		if n == len(buf) {
			r.metrics.STUNIgnored.Add(1)
			continue
		}
		r.handle(buf[:n], from)
	}
}

func (r *stunResponder) handle(b []byte, from net.Addr) {
	req, err := parseBindingRequest(b, from)
	if err != nil {
		r.metrics.STUNIgnored.Add(1)
		r.log.Debug("ignored non-QUIC packet", "remote", from, "len", len(b), "err", err)
		return
	}
	if err := r.policy.check(req.from); err != nil {
		r.metrics.STUNIgnored.Add(1)
		r.log.Debug("no STUN answer to a refused address", "remote", from, "err", err)
		return
	}
	if !r.limit.allow(req.from.Addr()) {
		r.metrics.STUNLimited.Add(1)
		return
	}
	resp, err := req.response()
	if err != nil { // only if pion refuses the address, which parse checked
		r.metrics.STUNIgnored.Add(1)
		r.log.Warn("building STUN response", "remote", from, "err", err)
		return
	}
	// Counted before the write, so that whoever has the answer sees it
	// counted; a UDP send fails only locally (buffer full, closing).
	r.metrics.STUNAnswered.Add(1)
	if _, err := r.tr.WriteTo(resp, from); err != nil {
		r.log.Debug("sending STUN response", "remote", from, "err", err)
	}
}

// bindingRequest is what an answer needs from a valid request.
type bindingRequest struct {
	tx          [stun.TransactionIDSize]byte
	from        netip.AddrPort // unmapped
	fingerprint bool           // the request had one; so does the answer
}

// parseBindingRequest accepts a well-formed Binding request (RFC 8489
// §6.3: class request, method Binding, magic cookie, sane length) and
// nothing else: responses, indications, other methods and garbage get no
// answer, as RFC 8489 §6.3 wants for what is not STUN and as this relay
// wants for everything it does not serve.
func parseBindingRequest(b []byte, from net.Addr) (bindingRequest, error) {
	// The two top bits are zero in every STUN message (RFC 8489 §5);
	// quic-go only passes such packets on, but pion does not check them.
	if !stun.IsMessage(b) || b[0]&0xC0 != 0 {
		return bindingRequest{}, errors.New("not STUN")
	}
	// Exactly one message per datagram, attributes padded to 4 bytes
	// (RFC 8489 §5, §14); pion would accept trailing bytes.
	if n := int(binary.BigEndian.Uint16(b[2:4])); n != len(b)-20 || n%4 != 0 {
		return bindingRequest{}, fmt.Errorf("length field %d for %d bytes", n, len(b))
	}
	var m stun.Message
	if err := stun.Decode(b, &m); err != nil {
		return bindingRequest{}, err
	}
	if m.Type != stun.BindingRequest {
		return bindingRequest{}, fmt.Errorf("message type %v", m.Type)
	}
	req := bindingRequest{tx: m.TransactionID}
	for _, a := range m.Attributes {
		// A plain Binding request needs no comprehension-required
		// attribute, and this relay understands none in a request
		// (no authentication, no ICE). RFC 8489 §6.3.1 would answer
		// 420 (Unknown Attribute); an error listing attributes is a
		// larger answer to an unauthenticated sender, so the request
		// is dropped instead, which a client must survive anyway.
		if a.Type.Required() {
			return bindingRequest{}, fmt.Errorf("comprehension-required attribute %v", a.Type)
		}
	}
	if m.Contains(stun.AttrFingerprint) {
		// FINGERPRINT is last when present (RFC 8489 §14.7), and pion's
		// check relies on it.
		if m.Attributes[len(m.Attributes)-1].Type != stun.AttrFingerprint {
			return bindingRequest{}, errors.New("FINGERPRINT is not the last attribute")
		}
		if err := stun.Fingerprint.Check(&m); err != nil {
			return bindingRequest{}, fmt.Errorf("FINGERPRINT: %w", err)
		}
		req.fingerprint = true
	}
	ap, ok := udpAddrPort(from)
	if !ok || ap.Addr().IsUnspecified() || ap.Port() == 0 {
		return bindingRequest{}, fmt.Errorf("source %v", from)
	}
	req.from = ap
	return req, nil
}

// response is the Binding success response (RFC 8489 §6.3.1.1): the same
// transaction ID and XOR-MAPPED-ADDRESS, the source the request came from
// (RFC 8489 §14.2), and FINGERPRINT if the request carried one, because
// then the client demultiplexes by it. No SOFTWARE: nothing needs it and
// every byte is reflected.
func (q bindingRequest) response() ([]byte, error) {
	setters := []stun.Setter{
		stun.NewTransactionIDSetter(q.tx),
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.IP(q.from.Addr().AsSlice()), Port: int(q.from.Port())},
	}
	if q.fingerprint {
		setters = append(setters, stun.Fingerprint)
	}
	m, err := stun.Build(setters...)
	if err != nil {
		return nil, err
	}
	return m.Raw, nil
}

// udpAddrPort is a as an unmapped address and port: a dual-stack socket
// reports IPv4 senders as ::ffff:a.b.c.d, and the viewer compares what it
// learns with IPv4 addresses.
func udpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		if a == nil {
			return netip.AddrPort{}, false
		}
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.AddrPort{}, false
		}
	}
	if !ap.IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

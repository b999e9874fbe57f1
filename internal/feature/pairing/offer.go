package pairing

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/mdp/qrterminal/v3"
	"rsc.io/qr"
)

// Offer is everything a viewer needs to pair: whom to expect (name and key
// fingerprint), where to find it, and the one-time code that proves the
// owner sent it. It travels as a camagent://pair URI, typed or scanned.
type Offer struct {
	Name        string   // camera name, as the viewer will save it
	Fingerprint string   // camera key fingerprint, canonical form
	Code        string   // one-time code, display form
	Addrs       []string // host:port candidates, tried in order
	// Relays are relay URLs (relay=, repeatable) for cameras behind NAT,
	// each with the camera's locator secret (rv=): Join finds the camera
	// through them when no address answers, and the viewer keeps them to
	// find it again later (docs/relay.md).
	Relays []string
	// RelayAddrs (raddr=, repeatable) are the camera's public addresses
	// at its relays when the offer was made. Join dials them with Addrs,
	// saving a relay lookup, but does not save them: they change whenever
	// the camera or a relay restarts, and a viewer that dialled one later
	// would take a relayed path for a direct one (no NAT traversal).
	RelayAddrs []string
}

// OfferVersion is the v= parameter this package writes and accepts.
const OfferVersion = "1"

// Bounds on what ParseOffer accepts; a QR code holds little anyway.
const (
	maxOfferLen = 4096
	maxAddrs    = 16
	maxRelays   = 8
	maxRelayLen = 512
)

// ErrBadOffer reports a pairing URI that cannot be used.
var ErrBadOffer = errors.New("pairing: bad offer")

func badOffer(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadOffer, fmt.Sprintf(format, args...))
}

// ParseOffer parses camagent://pair?v=1&name=..&fp=..&code=..&addr=..
// [&addr=..][&relay=..][&raddr=..]. Unknown parameters are ignored so that later
// versions can add some; an unknown v is refused.
func ParseOffer(s string) (Offer, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxOfferLen {
		return Offer{}, badOffer("longer than %d bytes", maxOfferLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return Offer{}, badOffer("%v", err)
	}
	if u.Scheme != "camagent" || u.Host != "pair" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return Offer{}, badOffer("not a camagent://pair URI")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Offer{}, badOffer("%v", err)
	}
	return offerFromQuery(q)
}

func offerFromQuery(q url.Values) (Offer, error) {
	if v := q.Get("v"); v != OfferVersion {
		return Offer{}, badOffer("version %q, want %s", v, OfferVersion)
	}
	var o Offer
	var err error
	o.Name = q.Get("name")
	if err := identity.CheckName(o.Name); err != nil {
		return Offer{}, badOffer("name: %v", err)
	}
	if o.Fingerprint, err = identity.ParseFingerprint(q.Get("fp")); err != nil {
		return Offer{}, badOffer("fp: %v", err)
	}
	if o.Code, err = NormalizeCode(q.Get("code")); err != nil {
		return Offer{}, badOffer("code: %v", err)
	}
	if o.Addrs, err = parseAddrs(q["addr"]); err != nil {
		return Offer{}, err
	}
	if o.Relays, err = parseRelays(q["relay"]); err != nil {
		return Offer{}, err
	}
	if len(q["raddr"]) > maxRelays {
		return Offer{}, badOffer("more than %d raddrs", maxRelays)
	}
	if o.RelayAddrs, err = parseAddrs(q["raddr"]); err != nil {
		return Offer{}, err
	}
	if len(o.Addrs) == 0 && len(o.Relays) == 0 && len(o.RelayAddrs) == 0 {
		return Offer{}, badOffer("no addr or relay")
	}
	return o, nil
}

func parseAddrs(addrs []string) ([]string, error) {
	if len(addrs) > maxAddrs {
		return nil, badOffer("more than %d addrs", maxAddrs)
	}
	var out []string
	for _, a := range addrs {
		if err := checkAddr(a); err != nil {
			return nil, badOffer("addr %q: %v", a, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// checkAddr accepts host:port with a numeric port and a host that is an
// IP literal or a plausible DNS name.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return errors.New("bad port")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return errors.New("bad host")
	}
	for _, r := range host {
		if !(r == '-' || r == '.' || r == '_' || r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return errors.New("bad host")
		}
	}
	return nil
}

func parseRelays(relays []string) ([]string, error) {
	if len(relays) > maxRelays {
		return nil, badOffer("more than %d relays", maxRelays)
	}
	var out []string
	for _, r := range relays {
		if r == "" || len(r) > maxRelayLen || strings.IndexFunc(r, func(c rune) bool { return !unicode.IsPrint(c) || c == ' ' }) >= 0 {
			return nil, badOffer("relay %q", r)
		}
		out = append(out, r)
	}
	return out, nil
}

// String renders the offer as a camagent://pair URI, parameters in a fixed
// order and ':' left unescaped, to keep the QR code small.
func (o Offer) String() string {
	var b strings.Builder
	b.WriteString("camagent://pair?v=" + OfferVersion)
	param := func(k, v string) {
		b.WriteString("&" + k + "=" + strings.ReplaceAll(url.QueryEscape(v), "%3A", ":"))
	}
	param("name", o.Name)
	param("fp", o.Fingerprint)
	param("code", o.Code)
	for _, a := range o.Addrs {
		param("addr", a)
	}
	for _, r := range o.Relays {
		param("relay", r)
	}
	for _, a := range o.RelayAddrs {
		param("raddr", a)
	}
	return b.String()
}

// RenderQR draws text as a QR code with Unicode half blocks (two modules
// per character cell, so a pairing URI fits an 80x25 terminal). It assumes
// a light foreground on a dark background, the common terminal default.
func RenderQR(w io.Writer, text string) error {
	// qrterminal ignores encoding errors and would then crash on a nil
	// code; check first.
	if _, err := qr.Encode(text, qr.M); err != nil {
		return fmt.Errorf("pairing: qr: %w", err)
	}
	qrterminal.GenerateWithConfig(text, qrterminal.Config{
		Level:          qrterminal.M,
		Writer:         w,
		HalfBlocks:     true,
		BlackChar:      qrterminal.BLACK_BLACK,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar:      qrterminal.WHITE_WHITE,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		QuietZone:      qrterminal.QUIET_ZONE,
	})
	return nil
}

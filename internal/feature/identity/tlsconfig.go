package identity

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
)

// Handshake refusals. crypto/tls turns them into a TLS alert, which QUIC
// carries as a CRYPTO_ERROR transport error.
var (
	ErrNoClientCert = errors.New("identity: peer presented no certificate")
	ErrNotPaired    = errors.New("identity: viewer not paired or revoked")
	ErrPinMismatch  = errors.New("identity: camera fingerprint does not match the pinned one")
	ErrUnknownALPN  = errors.New("identity: no supported application protocol offered")
	errALPNMismatch = errors.New("identity: negotiated protocol differs from the one authorised")
)

// ServerTLSConfig is the camera's TLS configuration for its one QUIC
// listener. The policy is chosen per connection by the ALPN the client
// offers:
//
//   - videoALPN: the client must present a certificate whose fingerprint
//     is paired and unrevoked in viewers. Anything else is refused during
//     the handshake, so an unpaired viewer never gets a connection, let
//     alone a stream.
//   - pairALPN: the client must present some certificate; its key is what
//     pairing registers, after the one-time code is checked.
//
// Session tickets are disabled: a resumed session skips the client
// certificate, which would let a viewer revoked after its first connection
// back in. log (nil for none) receives refused handshakes.
//
// The agent must listen with quic.Listen/ListenAddr, not the Early
// variants, which hand out connections before the client's certificate
// has been checked.
func ServerTLSConfig(id *Identity, viewers *ViewerStore, videoALPN, pairALPN string, log *slog.Logger) *tls.Config {
	return ServerTLSConfigALPNs(id, viewers, []string{videoALPN}, pairALPN, log)
}

// ServerTLSConfigALPNs is ServerTLSConfig with several protocols under the
// paired-viewers-only policy (live video, recordings). The first one a
// client offers, in videoALPNs order, wins.
func ServerTLSConfigALPNs(id *Identity, viewers *ViewerStore, videoALPNs []string, pairALPN string, log *slog.Logger) *tls.Config {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	videos := make([]*tls.Config, len(videoALPNs))
	for i, alpn := range videoALPNs {
		video := serverBase(id, alpn)
		video.VerifyConnection = func(cs tls.ConnectionState) error {
			fp, err := clientFingerprint(cs, alpn)
			if err != nil {
				return err
			}
			if _, ok := viewers.Allowed(fp); !ok {
				return fmt.Errorf("%w: %s", ErrNotPaired, ShortFingerprint(fp))
			}
			return nil
		}
		videos[i] = video
	}
	pair := serverBase(id, pairALPN)
	pair.VerifyConnection = func(cs tls.ConnectionState) error {
		_, err := clientFingerprint(cs, pairALPN)
		return err
	}

	root := serverBase(id, "")
	root.NextProtos = append(slices.Clone(videoALPNs), pairALPN)
	root.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		conf, err := pickConfig(hello.SupportedProtos, videoALPNs, videos, pairALPN, pair)
		if err != nil {
			log.Info("refused handshake", "remote", remoteAddr(hello), "offered", hello.SupportedProtos)
			return nil, err
		}
		return withRefusalLog(conf, log, hello), nil
	}
	return root
}

// serverBase is the part common to every server config. ClientAuth
// RequireAnyClientCert makes crypto/tls demand a certificate and prove
// possession of its key without chain checks; our VerifyConnection does
// the only check that matters, the fingerprint.
func serverBase(id *Identity, alpn string) *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{id.Certificate},
		MinVersion:             tls.VersionTLS13,
		ClientAuth:             tls.RequireAnyClientCert,
		SessionTicketsDisabled: true,
		NextProtos:             []string{alpn},
	}
}

// pickConfig selects the policy for the offered protocols. Each returned
// config lists exactly one protocol, so the protocol the connection ends up
// with is always the one whose policy was enforced. Video wins if a client
// offers both, which is the stricter policy.
func pickConfig(offered []string, videoALPNs []string, videos []*tls.Config, pairALPN string, pair *tls.Config) (*tls.Config, error) {
	for i, alpn := range videoALPNs {
		if slices.Contains(offered, alpn) {
			return videos[i], nil
		}
	}
	if slices.Contains(offered, pairALPN) {
		return pair, nil
	}
	return nil, ErrUnknownALPN
}

// withRefusalLog wraps the config's VerifyConnection to log refusals with
// the remote address, which only the ClientHello knows.
func withRefusalLog(conf *tls.Config, log *slog.Logger, hello *tls.ClientHelloInfo) *tls.Config {
	conf = conf.Clone()
	verify := conf.VerifyConnection
	addr := remoteAddr(hello)
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verify(cs)
		if err != nil {
			log.Warn("refused handshake", "remote", addr, "alpn", cs.NegotiatedProtocol, "err", err)
		}
		return err
	}
	return conf
}

func remoteAddr(hello *tls.ClientHelloInfo) string {
	if hello.Conn == nil || hello.Conn.RemoteAddr() == nil {
		return ""
	}
	return hello.Conn.RemoteAddr().String()
}

// clientFingerprint checks that the handshake negotiated alpn and that the
// client presented a certificate, and returns its fingerprint.
func clientFingerprint(cs tls.ConnectionState, alpn string) (string, error) {
	if cs.NegotiatedProtocol != alpn {
		return "", errALPNMismatch
	}
	fp := PeerFingerprint(cs)
	if fp == "" {
		return "", ErrNoClientCert
	}
	return fp, nil
}

// ClientTLSConfig is the viewer's TLS configuration for connecting to the
// camera whose fingerprint is pinned, speaking alpn.
//
// Cameras have self-signed certificates and no DNS name, so the WebPKI
// check cannot apply; InsecureSkipVerify turns it off and VerifyConnection
// replaces it with something stricter: the camera's key must be exactly the
// one learnt at pairing. That pin is what stops a machine in the middle
// (or a different camera at a recycled LAN address) from impersonating the
// camera. VerifyConnection, unlike VerifyPeerCertificate, also runs on
// resumed sessions, so no path skips the pin. An unparsable pin refuses
// every server.
func ClientTLSConfig(id *Identity, pinnedFingerprint string, alpn string) *tls.Config {
	pin, pinErr := ParseFingerprint(pinnedFingerprint)
	return &tls.Config{
		Certificates:       []tls.Certificate{id.Certificate},
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{alpn},
		ServerName:         "camagent",
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if pinErr != nil {
				return fmt.Errorf("%w: pinned value: %v", ErrPinMismatch, pinErr)
			}
			got := PeerFingerprint(cs)
			if got != pin {
				return fmt.Errorf("%w: got %s, want %s", ErrPinMismatch, ShortFingerprint(got), ShortFingerprint(pin))
			}
			return nil
		},
	}
}

// Package pairing introduces a viewer to a camera: one-time codes shared
// between `camagent pair` and the agent, the camagent://pair offer URI and
// its QR code, and the exchange over QUIC (ALPN camagent-pair/1) in which
// the camera registers the viewer's key. See docs/pairing.md.
package pairing

import (
	"errors"

	"github.com/quic-go/quic-go"
)

// ALPN is the TLS application protocol of the pairing exchange.
const ALPN = "camagent-pair/1"

// QUIC application error codes with which the camera closes a pairing
// connection.
const (
	CloseOK         quic.ApplicationErrorCode = 0x0
	CloseBadRequest quic.ApplicationErrorCode = 0x1
	CloseRefused    quic.ApplicationErrorCode = 0x2 // code wrong, expired, burned or rate limited
	CloseInternal   quic.ApplicationErrorCode = 0x3
)

// Errors of the exchange. Code errors (ErrCodeInvalid and friends) are in
// codestore.go.
var (
	ErrBadRequest = errors.New("pairing: bad request")
	ErrInternal   = errors.New("pairing: camera failed to save the pairing")
	ErrProtocol   = errors.New("pairing: malformed reply from camera")
	ErrNotPaired  = errors.New("pairing: this viewer is not paired with the camera (or was revoked)")
)

// wireErrors maps the error names carried in replies to Go errors, so that
// the viewer reports the same error the camera hit.
var wireErrors = map[string]error{
	"bad_request":  ErrBadRequest,
	"code_invalid": ErrCodeInvalid,
	"code_expired": ErrCodeExpired,
	"code_burned":  ErrCodeBurned,
	"rate_limited": ErrRateLimited,
	"internal":     ErrInternal,
	"not_paired":   ErrNotPaired,
}

// wireName is the reply name for err, "internal" for anything unlisted so
// that no camera-side detail leaks to an unauthenticated peer.
func wireName(err error) string {
	for name, e := range wireErrors {
		if errors.Is(err, e) {
			return name
		}
	}
	return "internal"
}

// closeCode is the connection close code for a refusal.
func closeCode(err error) quic.ApplicationErrorCode {
	switch {
	case err == nil:
		return CloseOK
	case errors.Is(err, ErrBadRequest):
		return CloseBadRequest
	case errors.Is(err, ErrInternal):
		return CloseInternal
	}
	return CloseRefused
}

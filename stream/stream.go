// Package stream carries live video over QUIC (docs/protocol.md): Hub is the
// camera side, fanning one encoder out to many viewers with one QUIC
// unidirectional stream per group of pictures and stale-group resets; Client
// is the viewer side.
package stream

import (
	"errors"
	"fmt"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/stream/wire"
)

// ALPN is the TLS application protocol of the live-video protocol.
const ALPN = "camagent/1"

// codeError is a failure that ends a connection with a camagent/1 error
// code, e.g. a protocol violation by the peer.
type codeError struct {
	code wire.ErrorCode
	err  error
}

func (e *codeError) Error() string { return fmt.Sprintf("%v: %v", e.code, e.err) }
func (e *codeError) Unwrap() error { return e.err }

func withCode(code wire.ErrorCode, format string, args ...any) error {
	return &codeError{code: code, err: fmt.Errorf(format, args...)}
}

// violation marks err, a parse failure or a rule broken by the peer, as a
// protocol violation.
func violation(err error) error {
	return &codeError{code: wire.ErrorProtocolViolation, err: err}
}

// codeOf picks the error code to close a connection with after err.
func codeOf(err error) wire.ErrorCode {
	var ce *codeError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, wire.ErrMalformed):
		return wire.ErrorProtocolViolation
	}
	return wire.ErrorInternal
}

// ErrorCode extracts the camagent/1 error code from an error returned by
// quic-go: a connection closed with an application error, or a stream reset
// or stopped by the peer or locally.
func ErrorCode(err error) (wire.ErrorCode, bool) {
	var appErr *quic.ApplicationError
	if errors.As(err, &appErr) {
		return wire.ErrorCode(appErr.ErrorCode), true
	}
	var streamErr *quic.StreamError
	if errors.As(err, &streamErr) {
		return wire.ErrorCode(streamErr.ErrorCode), true
	}
	return 0, false
}

// closeConn closes conn with the code for err; the reason string is
// truncated because it travels in one CONNECTION_CLOSE frame.
func closeConn(conn *quic.Conn, code wire.ErrorCode, reason string) {
	const maxReason = 256
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	_ = conn.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

// streamErrorOrigin reports whether err is a stream reset or stop and, if
// so, whether the peer (rather than our own CancelWrite/CancelRead) caused it.
func streamErrorOrigin(err error) (isStreamErr, remote bool) {
	var se *quic.StreamError
	if errors.As(err, &se) {
		return true, se.Remote
	}
	return false, false
}

package wire

import "fmt"

// ErrorCode is an application error code carried in QUIC CONNECTION_CLOSE,
// RESET_STREAM and STOP_SENDING frames (protocol.md §6). Package stream
// converts it to quic.ApplicationErrorCode or quic.StreamErrorCode.
type ErrorCode uint64

// Error codes of camagent/1.
const (
	// ErrorNone closes a connection or abandons a stream without fault.
	ErrorNone ErrorCode = 0x0
	// ErrorProtocolViolation: the peer sent bytes that break protocol.md.
	ErrorProtocolViolation ErrorCode = 0x1
	// ErrorStaleGroup resets (camera) or stops (viewer) a group stream that
	// a newer group has made obsolete.
	ErrorStaleGroup ErrorCode = 0x2
	// ErrorGoingAway closes a connection the camera is shutting down.
	ErrorGoingAway ErrorCode = 0x3
	// ErrorUnauthorised closes a connection from a peer that may not view.
	ErrorUnauthorised ErrorCode = 0x4
	// ErrorInternal closes a connection after a local failure.
	ErrorInternal ErrorCode = 0x5
	// ErrorBusy closes a connection the camera has no room for.
	ErrorBusy ErrorCode = 0x6
	// ErrorUnsupportedVersion answers a HELLO with a version the camera
	// does not speak.
	ErrorUnsupportedVersion ErrorCode = 0x7
	// ErrorTimeout closes a connection whose peer did not speak in time.
	ErrorTimeout ErrorCode = 0x8
)

var errorNames = map[ErrorCode]string{
	ErrorNone:               "NONE",
	ErrorProtocolViolation:  "PROTOCOL_VIOLATION",
	ErrorStaleGroup:         "STALE_GROUP",
	ErrorGoingAway:          "GOING_AWAY",
	ErrorUnauthorised:       "UNAUTHORISED",
	ErrorInternal:           "INTERNAL",
	ErrorBusy:               "BUSY",
	ErrorUnsupportedVersion: "UNSUPPORTED_VERSION",
	ErrorTimeout:            "TIMEOUT",
}

func (c ErrorCode) String() string {
	if name, ok := errorNames[c]; ok {
		return name
	}
	return fmt.Sprintf("ERROR_%#x", uint64(c))
}

// Package wire is the byte-level format of the camagent/1 live-video
// protocol (docs/protocol.md): control messages, the group stream header and
// media frames. It has no knowledge of QUIC connections; package stream moves
// these bytes over quic-go.
//
// Every parser bounds-checks its input and returns an error wrapping
// ErrMalformed instead of panicking; lengths are checked against
// MaxMessageSize and MaxFrameSize before any memory is allocated for them.
package wire

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/quic-go/quic-go/quicvarint"
)

// Version1 is the protocol version carried in HELLO (protocol.md §3.1).
const Version1 = 1

// Size limits (protocol.md §2). A peer that exceeds one commits a protocol
// violation.
const (
	// MaxMessageSize bounds the payload of one control message.
	MaxMessageSize = 64 << 10
	// MaxFrameSize bounds one frame record (everything after its length).
	MaxFrameSize = 8 << 20
	// MaxNameLen bounds camera and software names and other short strings.
	MaxNameLen = 256
	// MaxParamSetLen bounds each of SPS and PPS in CATALOG.
	MaxParamSetLen = 4096
	// MaxDimension bounds the width and height announced in CATALOG.
	MaxDimension = 1 << 16
)

var (
	// ErrMalformed is wrapped by every error caused by bytes that do not
	// follow protocol.md; the receiver answers with ErrorProtocolViolation.
	ErrMalformed = errors.New("malformed camagent/1 data")
	// ErrTooLarge reports a length over a limit. It wraps ErrMalformed.
	ErrTooLarge = fmt.Errorf("%w: length over limit", ErrMalformed)
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// readVarint reads one QUIC varint. An EOF before the first byte is io.EOF (a
// clean boundary); an EOF inside the varint is io.ErrUnexpectedEOF.
func readVarint(r io.ByteReader) (uint64, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	n := 1 << (first >> 6)
	v := uint64(first & 0x3f)
	for i := 1; i < n; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, noEOF(err)
		}
		v = v<<8 | uint64(b)
	}
	return v, nil
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF for reads that began a unit.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendVarint appends v, refusing values quicvarint cannot encode (it
// panics on them).
func appendVarint(b []byte, v uint64) ([]byte, error) {
	if v > quicvarint.Max {
		return b, fmt.Errorf("value %d does not fit a QUIC varint", v)
	}
	return quicvarint.Append(b, v), nil
}

// decoder reads fields from one message or frame payload. The first failure
// sticks, so callers check err once after reading all fields.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) varint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n, err := quicvarint.Parse(d.b)
	if err != nil {
		d.fail(malformed("truncated varint"))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(malformed("truncated byte field"))
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes reads a varint-length-prefixed byte string of at most limit bytes.
// The result aliases the input.
func (d *decoder) bytes(limit int, field string) []byte {
	n := d.varint()
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) {
		d.fail(fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, field, n, limit))
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(malformed("truncated %s", field))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// text reads a length-prefixed UTF-8 string.
func (d *decoder) text(limit int, field string) string {
	v := d.bytes(limit, field)
	if d.err == nil && !utf8.Valid(v) {
		d.fail(malformed("%s is not UTF-8", field))
	}
	return string(v)
}

// more reports whether unread bytes remain. Later protocol versions append
// fields, and receivers ignore what they do not know (protocol.md §2).
func (d *decoder) more() bool { return d.err == nil && len(d.b) > 0 }

// encoder mirrors decoder for the append side.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) varint(v uint64) {
	if e.err == nil {
		e.b, e.err = appendVarint(e.b, v)
	}
}

func (e *encoder) bytes(v []byte, limit int, field string) {
	if e.err != nil {
		return
	}
	if len(v) > limit {
		e.err = fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, field, len(v), limit)
		return
	}
	e.b = quicvarint.Append(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) text(v string, limit int, field string) {
	if e.err == nil && !utf8.ValidString(v) {
		e.err = fmt.Errorf("%s is not UTF-8", field)
		return
	}
	e.bytes([]byte(v), limit, field)
}

package wire

import (
	"fmt"
	"io"

	"github.com/quic-go/quic-go/quicvarint"
)

// MessageType identifies a control message (protocol.md §3).
type MessageType uint64

// Control message types of version 1. Ranges reserved for later messages
// are listed in protocol.md §3; receivers skip types they do not know.
const (
	TypeHello   MessageType = 0x01
	TypeCatalog MessageType = 0x02
	TypePing    MessageType = 0x03
	TypePong    MessageType = 0x04
	TypeGoAway  MessageType = 0x05
)

func (t MessageType) String() string {
	switch t {
	case TypeHello:
		return "HELLO"
	case TypeCatalog:
		return "CATALOG"
	case TypePing:
		return "PING"
	case TypePong:
		return "PONG"
	case TypeGoAway:
		return "GOAWAY"
	}
	return fmt.Sprintf("MESSAGE_%#x", uint64(t))
}

// Message is one control message. The concrete types are *Hello, *Catalog,
// *Ping, *Pong, *GoAway and *Unknown.
type Message interface {
	Type() MessageType
	appendPayload(e *encoder)
}

// Unknown is a message of a type this version does not define. Parsers
// return it so that callers can log and skip it; appending one writes its
// payload verbatim, which lets tests and extensions send any type.
type Unknown struct {
	MessageType MessageType
	Payload     []byte
}

// Type returns the message's type.
func (m *Unknown) Type() MessageType { return m.MessageType }

func (m *Unknown) appendPayload(e *encoder) { e.b = append(e.b, m.Payload...) }

// AppendMessage appends m as {type, length, payload} (protocol.md §3).
func AppendMessage(b []byte, m Message) ([]byte, error) {
	e := encoder{}
	m.appendPayload(&e)
	if e.err != nil {
		return b, fmt.Errorf("encode %v: %w", m.Type(), e.err)
	}
	if len(e.b) > MaxMessageSize {
		return b, fmt.Errorf("encode %v: %w: payload %d bytes", m.Type(), ErrTooLarge, len(e.b))
	}
	b, err := appendVarint(b, uint64(m.Type()))
	if err != nil {
		return b, err
	}
	b = quicvarint.Append(b, uint64(len(e.b)))
	return append(b, e.b...), nil
}

// ParseMessage parses one message from the start of b and returns it with
// the number of bytes consumed. A b that ends inside the message gives an
// error wrapping io.ErrUnexpectedEOF; an empty b gives io.EOF. The message
// may alias b.
func ParseMessage(b []byte) (Message, int, error) {
	typ, n1, err := quicvarint.Parse(b)
	if err != nil {
		return nil, 0, err // io.EOF or io.ErrUnexpectedEOF
	}
	length, n2, err := quicvarint.Parse(b[n1:])
	if err != nil {
		return nil, 0, noEOF(err)
	}
	if length > MaxMessageSize {
		return nil, 0, fmt.Errorf("%w: message %v is %d bytes", ErrTooLarge, MessageType(typ), length)
	}
	start := n1 + n2
	if uint64(len(b)-start) < length {
		return nil, 0, io.ErrUnexpectedEOF
	}
	end := start + int(length)
	m, err := parsePayload(MessageType(typ), b[start:end:end])
	if err != nil {
		return nil, 0, err
	}
	return m, end, nil
}

// ReadMessage reads one message from r. It returns io.EOF if r ends cleanly
// before a message and io.ErrUnexpectedEOF if it ends inside one. The
// payload buffer is allocated only after the length passed its limit.
func ReadMessage(r quicvarint.Reader) (Message, error) {
	typ, err := readVarint(r)
	if err != nil {
		return nil, err
	}
	length, err := readVarint(r)
	if err != nil {
		return nil, noEOF(err)
	}
	if length > MaxMessageSize {
		return nil, fmt.Errorf("%w: message %v is %d bytes", ErrTooLarge, MessageType(typ), length)
	}
	payload := make([]byte, length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, noEOF(err)
	}
	return parsePayload(MessageType(typ), payload)
}

func parsePayload(typ MessageType, payload []byte) (Message, error) {
	d := decoder{b: payload}
	var m Message
	switch typ {
	case TypeHello:
		m = parseHello(&d)
	case TypeCatalog:
		m = parseCatalog(&d)
	case TypePing:
		m = &Ping{Timestamp: d.varint()}
	case TypePong:
		m = &Pong{Timestamp: d.varint()}
	case TypeGoAway:
		m = &GoAway{Reason: d.text(MaxNameLen, "GOAWAY reason")}
	default:
		return &Unknown{MessageType: typ, Payload: payload}, nil
	}
	if d.err != nil {
		return nil, fmt.Errorf("parse %v: %w", typ, d.err)
	}
	return m, nil
}

// Ping asks the peer for a Pong carrying the same timestamp (protocol.md
// §3.3). The timestamp is opaque to the receiver; camagent sends
// microseconds on the sender's monotonic clock.
type Ping struct{ Timestamp uint64 }

// Type returns TypePing.
func (*Ping) Type() MessageType { return TypePing }

func (m *Ping) appendPayload(e *encoder) { e.varint(m.Timestamp) }

// Pong answers a Ping.
type Pong struct{ Timestamp uint64 }

// Type returns TypePong.
func (*Pong) Type() MessageType { return TypePong }

func (m *Pong) appendPayload(e *encoder) { e.varint(m.Timestamp) }

// GoAway announces that the sender is about to close the connection
// (protocol.md §3.4).
type GoAway struct{ Reason string }

// Type returns TypeGoAway.
func (*GoAway) Type() MessageType { return TypeGoAway }

func (m *GoAway) appendPayload(e *encoder) { e.text(m.Reason, MaxNameLen, "GOAWAY reason") }

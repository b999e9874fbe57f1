// Package recwire is the wire format of the recordings protocol (ALPN
// camagent-rec/1, docs/recording.md "Playback protocol"): on each QUIC
// bidirectional stream the viewer sends one request message and the camera
// answers with one response message, followed for "play" by frame records
// and an end record, for "still" and "event-snapshot" by the JPEG bytes.
//
// A message is a 4-byte big-endian length and that many bytes of JSON. A
// frame record is: kind (1 byte: 1 frame, 0 end), flags (1 byte: bit 0 key
// frame), capture time (8 bytes, signed Unix nanoseconds), length (4
// bytes) and the Annex-B access unit.
package recwire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Ops a request can name.
const (
	OpList          = "list"
	OpPlay          = "play"
	OpStill         = "still"
	OpEventSnapshot = "event-snapshot"
)

// Limits on what a peer may send.
const (
	// MaxRequest bounds a request (the viewer's message): an op, two
	// times and an event id are well under 200 bytes, so a few KiB leave
	// room for later fields while a paired viewer cannot make the camera
	// hold more per stream (issue 11 item 8).
	MaxRequest = 4 << 10
	MaxMessage = 1 << 20  // a response: a listing of a few thousand segments
	MaxFrame   = 16 << 20 // one access unit or JPEG
)

// firstMessageRead and firstFrameRead are what a read allocates before
// any byte of a message's or frame's body has arrived; beyond them,
// buffers grow with what actually arrives, never to the length a peer
// merely claims (a request claiming 4 KiB and sending nothing costs
// 512 bytes).
const (
	firstMessageRead = 512
	firstFrameRead   = 64 << 10
)

// Errors.
var (
	ErrTooLarge = errors.New("recwire: message or frame too large")
	ErrBadKind  = errors.New("recwire: unknown record kind")
)

// Request is what the viewer asks for.
type Request struct {
	Op   string    `json:"op"`
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	ID   string    `json:"id,omitempty"` // event id for OpEventSnapshot
}

// Segment is one recording in a listing.
type Segment struct {
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	Size     int64         `json:"size"`
	Open     bool          `json:"open,omitempty"`
}

// Event is one motion event in a listing.
type Event struct {
	ID    string    `json:"id"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
	Score float64   `json:"score"`
}

// Response heads every answer. Error, if set, means nothing follows.
type Response struct {
	Error    string    `json:"error,omitempty"`
	Segments []Segment `json:"segments,omitempty"`
	Events   []Event   `json:"events,omitempty"`
	// Size is the length of the JPEG that follows (still, event-snapshot).
	Size int `json:"size,omitempty"`
}

// WriteMessage writes v as one length-prefixed JSON message.
func WriteMessage(w io.Writer, v any) error {
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(js) > MaxMessage {
		return ErrTooLarge
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(js)), uint32(len(js)))
	_, err = w.Write(append(buf, js...))
	return err
}

// ReadMessage reads one message of at most MaxMessage bytes into v (a
// response, on the viewer's side).
func ReadMessage(r io.Reader, v any) error {
	return readMessage(r, MaxMessage, v)
}

// ReadRequest reads the viewer's request (on the camera's side): at most
// MaxRequest bytes, refused with ErrTooLarge as soon as its length says
// more, before any of the body is read.
func ReadRequest(r io.Reader) (Request, error) {
	var req Request
	err := readMessage(r, MaxRequest, &req)
	return req, err
}

func readMessage(r io.Reader, limit uint32, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("recwire: message header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > limit {
		return fmt.Errorf("%w: message of %d bytes, limit %d", ErrTooLarge, n, limit)
	}
	buf, err := readBody(r, n, firstMessageRead)
	if err != nil {
		return fmt.Errorf("recwire: message: %w", err)
	}
	if err := json.Unmarshal(buf, v); err != nil {
		return fmt.Errorf("recwire: message: %w", err)
	}
	return nil
}

// readBody reads n bytes, allocating at most first bytes before they
// arrive and then growing with what did: a peer that claims a large
// body and sends little costs little.
func readBody(r io.Reader, n uint32, first int) ([]byte, error) {
	if int64(n) <= int64(first) {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	var buf bytes.Buffer
	buf.Grow(first)
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf.Bytes(), nil
}

// Frame is one access unit of a played recording.
type Frame struct {
	Key      bool
	Captured time.Time
	Data     []byte
}

const (
	kindEnd   = 0
	kindFrame = 1
	frameHdr  = 14
)

// WriteFrame writes one frame record.
func WriteFrame(w io.Writer, f Frame) error {
	if len(f.Data) > MaxFrame {
		return ErrTooLarge
	}
	var hdr [frameHdr]byte
	hdr[0] = kindFrame
	if f.Key {
		hdr[1] = 1
	}
	binary.BigEndian.PutUint64(hdr[2:], uint64(f.Captured.UnixNano()))
	binary.BigEndian.PutUint32(hdr[10:], uint32(len(f.Data)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(f.Data)
	return err
}

// WriteEnd writes the end record: everything asked for was sent.
func WriteEnd(w io.Writer) error {
	_, err := w.Write(make([]byte, frameHdr))
	return err
}

// ReadFrame reads the next record; io.EOF means the end record (a stream
// that stops without one gives io.ErrUnexpectedEOF).
func ReadFrame(r io.Reader) (Frame, error) {
	var hdr [frameHdr]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("recwire: frame header: %w", err)
	}
	switch hdr[0] {
	case kindEnd:
		return Frame{}, io.EOF
	case kindFrame:
	default:
		return Frame{}, fmt.Errorf("%w %d", ErrBadKind, hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[10:])
	if n > MaxFrame {
		return Frame{}, ErrTooLarge
	}
	f := Frame{Key: hdr[1]&1 != 0, Captured: time.Unix(0, int64(binary.BigEndian.Uint64(hdr[2:])))}
	var err error
	if f.Data, err = readBody(r, n, firstFrameRead); err != nil {
		return Frame{}, fmt.Errorf("recwire: frame: %w", err)
	}
	return f, nil
}

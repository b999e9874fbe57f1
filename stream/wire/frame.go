package wire

import (
	"fmt"
	"io"
	"time"

	"github.com/quic-go/quic-go/quicvarint"
)

// FlagKey marks a key frame (IDR access unit or JPEG). The other flag bits
// are reserved: sent as zero, ignored on receipt (protocol.md §5).
const FlagKey = 0x01

// Frame is one encoded picture on a group stream (protocol.md §5).
type Frame struct {
	// PTS is the presentation time from the start of the track; the wire
	// carries whole microseconds and no negative values.
	PTS time.Duration
	// Captured is the wall-clock capture time, carried as Unix
	// microseconds; the zero Time is sent as 0 ("unknown").
	Captured time.Time
	Key      bool
	// Payload is an Annex-B access unit or a JPEG image.
	Payload []byte
}

// AppendFrame appends f as {length, PTS, capture time, flags, payload}.
func AppendFrame(b []byte, f Frame) ([]byte, error) {
	if f.PTS < 0 {
		return b, fmt.Errorf("frame PTS %v is negative", f.PTS)
	}
	pts := uint64(f.PTS / time.Microsecond)
	captured := unixMicros(f.Captured)
	length := quicvarint.Len(pts) + quicvarint.Len(captured) + 1 + len(f.Payload)
	if length > MaxFrameSize {
		return b, fmt.Errorf("%w: frame is %d bytes", ErrTooLarge, length)
	}
	var flags byte
	if f.Key {
		flags |= FlagKey
	}
	b = quicvarint.Append(b, uint64(length))
	b = quicvarint.Append(b, pts)
	b = quicvarint.Append(b, captured)
	b = append(b, flags)
	return append(b, f.Payload...), nil
}

// FrameOverhead is the largest number of bytes AppendFrame adds to a
// payload: 4 (length) + 8 (PTS) + 8 (capture time) + 1 (flags).
const FrameOverhead = 4 + 8 + 8 + 1

// ParseFrame parses one frame from the start of b and returns the bytes
// consumed. The payload aliases b. An empty b gives io.EOF (end of group).
func ParseFrame(b []byte) (Frame, int, error) {
	length, n, err := quicvarint.Parse(b)
	if err != nil {
		return Frame{}, 0, err
	}
	if err := checkFrameLength(length); err != nil {
		return Frame{}, 0, err
	}
	if uint64(len(b)-n) < length {
		return Frame{}, 0, io.ErrUnexpectedEOF
	}
	end := n + int(length)
	f, err := parseFrameBody(b[n:end:end])
	if err != nil {
		return Frame{}, 0, err
	}
	return f, end, nil
}

// ReadFrame reads one frame from a group stream. It returns io.EOF when
// the stream ends cleanly between frames (the group is complete). The
// payload is freshly allocated and owned by the caller.
func ReadFrame(r quicvarint.Reader) (Frame, error) {
	length, err := readVarint(r)
	if err != nil {
		return Frame{}, err
	}
	if err := checkFrameLength(length); err != nil {
		return Frame{}, err
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return Frame{}, noEOF(err)
	}
	return parseFrameBody(body)
}

func checkFrameLength(length uint64) error {
	if length > MaxFrameSize {
		return fmt.Errorf("%w: frame is %d bytes", ErrTooLarge, length)
	}
	if length < 3 { // PTS, capture time and flags take at least 3 bytes
		return malformed("frame of %d bytes is too short", length)
	}
	return nil
}

func parseFrameBody(body []byte) (Frame, error) {
	d := decoder{b: body}
	pts := d.varint()
	captured := d.varint()
	flags := d.byte()
	if d.err != nil {
		return Frame{}, fmt.Errorf("parse frame: %w", d.err)
	}
	if pts > uint64(maxDurationMicros) {
		return Frame{}, malformed("frame PTS %d µs out of range", pts)
	}
	return Frame{
		PTS:      time.Duration(pts) * time.Microsecond,
		Captured: fromUnixMicros(captured),
		Key:      flags&FlagKey != 0,
		Payload:  d.b,
	}, nil
}

// maxDurationMicros is the largest PTS a time.Duration can hold.
const maxDurationMicros = int64(1<<63-1) / int64(time.Microsecond)

func unixMicros(t time.Time) uint64 {
	if t.IsZero() || t.UnixMicro() <= 0 {
		return 0
	}
	return uint64(t.UnixMicro())
}

func fromUnixMicros(us uint64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(us))
}

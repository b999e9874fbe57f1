package wire

import (
	"fmt"
	"io"

	"github.com/quic-go/quic-go/quicvarint"
)

// StreamType is the first varint of every unidirectional stream
// (protocol.md §4). Receivers stop reading streams of unknown types.
type StreamType uint64

// StreamGroup carries one group of pictures from camera to viewer.
const StreamGroup StreamType = 0x01

// GroupHeader follows StreamGroup at the start of a group stream.
type GroupHeader struct {
	// Sequence numbers groups from 1 upwards, one per key frame, for the
	// life of the camera process: larger is newer.
	Sequence uint64
}

// AppendGroupHeader appends the stream type and the group header.
func AppendGroupHeader(b []byte, h GroupHeader) ([]byte, error) {
	b = quicvarint.Append(b, uint64(StreamGroup))
	return appendVarint(b, h.Sequence)
}

// ParseGroupHeader parses a stream type that must be StreamGroup and the
// group header from the start of b, returning the bytes consumed.
func ParseGroupHeader(b []byte) (GroupHeader, int, error) {
	typ, n1, err := quicvarint.Parse(b)
	if err != nil {
		return GroupHeader{}, 0, noEOF(err)
	}
	if StreamType(typ) != StreamGroup {
		return GroupHeader{}, 0, malformed("stream type %#x is not GROUP", typ)
	}
	seq, n2, err := quicvarint.Parse(b[n1:])
	if err != nil {
		return GroupHeader{}, 0, noEOF(err)
	}
	return GroupHeader{Sequence: seq}, n1 + n2, nil
}

// ReadStreamType reads the stream type that opens a unidirectional stream.
func ReadStreamType(r io.ByteReader) (StreamType, error) {
	v, err := readVarint(r)
	if err != nil {
		return 0, noEOF(err) // a stream must carry at least its type
	}
	return StreamType(v), nil
}

// ReadGroupHeader reads the group header that follows StreamGroup.
func ReadGroupHeader(r io.ByteReader) (GroupHeader, error) {
	seq, err := readVarint(r)
	if err != nil {
		return GroupHeader{}, fmt.Errorf("read group header: %w", noEOF(err))
	}
	return GroupHeader{Sequence: seq}, nil
}

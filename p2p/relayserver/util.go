package relayserver

import (
	"errors"
	"io"

	"github.com/quic-go/quic-go/quicvarint"

	"github.com/camagent/camagent/p2p/masque/wire"
)

func quicvarintAppend(v uint64) []byte { return quicvarint.Append(nil, v) }

func ioReadFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

// capsuleDatagram is the DATAGRAM capsule (RFC 9297 section 3.5): an HTTP
// Datagram sent on the request stream instead of in a QUIC DATAGRAM frame.
const capsuleDatagram wire.CapsuleType = 0x00

// maxDatagramCapsule bounds a DATAGRAM capsule; bigger ones could not be
// sent as one UDP packet anyway.
const maxDatagramCapsule = 64 << 10

// readDatagramCapsule reads the value of a DATAGRAM capsule.
func readDatagramCapsule(r interface {
	io.Reader
	Remaining() int64
}) ([]byte, error) {
	if r.Remaining() > maxDatagramCapsule {
		return nil, errors.Join(wire.ErrMalformed, errors.New("oversized DATAGRAM capsule"))
	}
	d := make([]byte, r.Remaining())
	_, err := io.ReadFull(r, d)
	return d, err
}

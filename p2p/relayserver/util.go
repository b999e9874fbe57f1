package relayserver

import (
	"io"

	"github.com/quic-go/quic-go/quicvarint"
)

func quicvarintAppend(v uint64) []byte { return quicvarint.Append(nil, v) }

func ioReadFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

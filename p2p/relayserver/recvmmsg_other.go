//go:build !linux

package relayserver

import (
	"net"
	"net/netip"
)

// batchReader reads one datagram at a time where recvmmsg(2) is not
// available (camagent ships for Linux; this keeps other builds working).
type batchReader struct {
	c     *net.UDPConn
	bufs  [][]byte
	lens  []int
	addrs []netip.AddrPort
}

func newBatchReader(c *net.UDPConn, _ int, size int) (*batchReader, error) {
	return &batchReader{c: c, bufs: [][]byte{make([]byte, size)}, lens: make([]int, 1), addrs: make([]netip.AddrPort, 1)}, nil
}

func (r *batchReader) readBatch() (int, error) {
	n, from, err := r.c.ReadFromUDPAddrPort(r.bufs[0])
	if err != nil {
		return 0, err
	}
	r.lens[0], r.addrs[0] = n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	return 1, nil
}

func (r *batchReader) packet(i int) []byte { return r.bufs[i][:r.lens[i]] }

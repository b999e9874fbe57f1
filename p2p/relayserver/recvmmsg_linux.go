//go:build linux

package relayserver

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchReader reads up to len(bufs) datagrams per recvmmsg(2) call from a
// UDP socket, with the sources as netip.AddrPort: no allocation per call
// or per packet, where x/net's ReadBatch packs and unpacks its message
// headers on every call and allocates a net.UDPAddr and its IP for every
// packet (profiled on the CONNECT-UDP path: 2 allocations and about 2 % of
// the relay's CPU per forwarded datagram, plus the garbage collection they
// cause).
type batchReader struct {
	rc    syscall.RawConn
	hs    []mmsghdr
	iovs  []unix.Iovec
	names []rawSockaddr
	bufs  [][]byte
	addrs []netip.AddrPort
	n     int
	errno syscall.Errno
	read  func(fd uintptr) bool // the RawConn.Read callback, made once
}

// mmsghdr is struct mmsghdr of recvmmsg(2): Go lays it out as C does on
// 32- and 64-bit Linux (on 64-bit the struct is padded to 8 bytes).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// rawSockaddr holds a sockaddr_in or sockaddr_in6 (28 bytes).
type rawSockaddr [28]byte

func newBatchReader(c *net.UDPConn, n, size int) (*batchReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &batchReader{rc: rc, hs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n), names: make([]rawSockaddr, n),
		bufs: make([][]byte, n), addrs: make([]netip.AddrPort, n)}
	for i := range r.hs {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.hs[i].hdr.Iov = &r.iovs[i]
		r.hs[i].hdr.SetIovlen(1)
		r.hs[i].hdr.Name = &r.names[i][0]
	}
	r.read = func(fd uintptr) bool {
		for i := range r.hs {
			r.hs[i].hdr.Namelen = uint32(len(r.names[i]))
		}
		for {
			n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hs[0])), uintptr(len(r.hs)),
				unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait until readable
			}
			r.n, r.errno = int(n), e
			return true
		}
	}
	return r, nil
}

// readBatch blocks until at least one datagram is there and returns how
// many were read: bufs[i][:lens(i)] from addrs[i].
func (r *batchReader) readBatch() (int, error) {
	if err := r.rc.Read(r.read); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	for i := range r.n {
		r.addrs[i] = parseSockaddr(r.names[i][:r.hs[i].hdr.Namelen])
	}
	return r.n, nil
}

func (r *batchReader) packet(i int) []byte { return r.bufs[i][:r.hs[i].n] }

// parseSockaddr reads a sockaddr_in or sockaddr_in6 (IPv4-mapped IPv6
// unmapped).
func parseSockaddr(b []byte) netip.AddrPort {
	if len(b) < 8 {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		if len(b) < 24 {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), port)
	}
	return netip.AddrPort{}
}

//go:build linux

package natlab

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Relay is the role that carries a viewer's QUIC packets to the camera
// while no direct path exists. The harness needs from it only what a real
// relay also knows: where it listens, the public addresses it observes
// for the camera (what MASQUE's Proxy-Public-Address reports) and for the
// viewer, and how many media bytes it carried to the viewer. Forwarder is
// the UDP stand-in; the MASQUE relay will be another implementation.
type Relay interface {
	// Addr is where viewers dial and the camera registers.
	Addr() netip.AddrPort
	// CameraAddr waits for the camera's registration and returns the
	// address its packets came from: its server-reflexive address.
	CameraAddr(ctx context.Context) (netip.AddrPort, error)
	// ViewerAddr is the address the viewer's packets come from, once one
	// arrived.
	ViewerAddr() (netip.AddrPort, bool)
	// ToViewerBytes counts UDP payload bytes carried to the viewer.
	ToViewerBytes() uint64
	Close() error
}

// RegisterPacket is what the camera sends to the Forwarder from its QUIC
// socket, once a second: it opens and holds the camera's NAT mapping
// toward the relay (the role the camera's tunnel plays with MASQUE) and
// tells the Forwarder where the camera is. The first byte has the QUIC
// fixed bit clear, like the traversal packets.
var RegisterPacket = []byte{0, 'r', 'e', 'g'}

// Forwarder is a Relay that forwards UDP datagrams between one viewer and
// the registered camera, from its own address, like a TURN server.
type Forwarder struct {
	conn       *net.UDPConn
	registered chan struct{}
	once       sync.Once

	mu     sync.Mutex
	camera netip.AddrPort
	viewer netip.AddrPort

	toViewer atomic.Uint64
	done     chan struct{}
}

// StartForwarder listens on RelayAddr:RelayPort in namespace ns.
func StartForwarder(ns string) (*Forwarder, error) {
	var conn *net.UDPConn
	err := InNamespace(ns, func() (err error) {
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(RelayAddr, RelayPort)))
		return err
	})
	if err != nil {
		return nil, err
	}
	f := &Forwarder{conn: conn, registered: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f, nil
}

func (f *Forwarder) run() {
	defer close(f.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if bytes.Equal(buf[:n], RegisterPacket) {
			f.mu.Lock()
			f.camera = from // a NAT rebinding moves it
			f.mu.Unlock()
			f.once.Do(func() { close(f.registered) })
			continue
		}
		f.mu.Lock()
		camera, viewer := f.camera, f.viewer
		if from != camera {
			f.viewer, viewer = from, from
		}
		f.mu.Unlock()
		switch {
		case from == camera && viewer.IsValid():
			if m, err := f.conn.WriteToUDPAddrPort(buf[:n], viewer); err == nil {
				f.toViewer.Add(uint64(m))
			}
		case from != camera && camera.IsValid():
			f.conn.WriteToUDPAddrPort(buf[:n], camera)
		}
	}
}

// Addr implements Relay.
func (f *Forwarder) Addr() netip.AddrPort { return netip.AddrPortFrom(RelayAddr, RelayPort) }

// CameraAddr implements Relay.
func (f *Forwarder) CameraAddr(ctx context.Context) (netip.AddrPort, error) {
	select {
	case <-f.registered:
	case <-ctx.Done():
		return netip.AddrPort{}, errors.New("camera never registered with the relay")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.camera, nil
}

// ViewerAddr implements Relay.
func (f *Forwarder) ViewerAddr() (netip.AddrPort, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.viewer, f.viewer.IsValid()
}

// ToViewerBytes implements Relay.
func (f *Forwarder) ToViewerBytes() uint64 { return f.toViewer.Load() }

// Close implements Relay.
func (f *Forwarder) Close() error {
	err := f.conn.Close()
	<-f.done
	return err
}

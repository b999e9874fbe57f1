package traversal

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/camagent/camagent/p2p/discovery"
)

// ResponderConfig configures a Responder.
type ResponderConfig struct {
	// Read returns the next non-QUIC packet of the camera's QUIC socket:
	// quic.Transport.ReadNonQUICPacket.
	Read func(ctx context.Context, b []byte) (int, net.Addr, error)
	// Write sends from the same socket: quic.Transport.WriteTo.
	Write func(b []byte, to net.Addr) (int, error)
	// Guard limits whom and how much the Responder answers.
	Guard *Guard
	// OnMappingProbe, if set, takes the camera's own mapping probes
	// (MappingProbePacket) with the address they came back from.
	OnMappingProbe func(token uint64, from netip.AddrPort)
}

// Responder answers keepalive packets on the camera's QUIC socket, so a
// viewer can tell within a fraction of a second that its direct path
// died, whether or not video is flowing. It answers only addresses a live
// connection has punched, with a packet of the same size, within the
// camera-wide budget; likewise fan-out packets from an IP the camera just
// sprayed. It hands the camera's own mapping probes to OnMappingProbe.
type Responder struct {
	cfg     ResponderConfig
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // why run stopped; read after done is closed
	echoed  atomic.Uint64
	ignored atomic.Uint64
}

// NewResponder starts a Responder; it runs until Close or a read error.
func NewResponder(cfg ResponderConfig) *Responder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Responder{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r
}

func (r *Responder) run(ctx context.Context) {
	defer close(r.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := r.cfg.Read(ctx, buf)
		if err != nil {
			if ctx.Err() == nil { // not Close: the socket failed
				r.err = fmt.Errorf("responder read: %w", err)
			}
			return
		}
		r.answer(buf[:n], from)
	}
}

func (r *Responder) answer(b []byte, from net.Addr) {
	kind, token, ok := parsePacket(b)
	src, err := discovery.AddrPort(from)
	if !ok || err != nil {
		r.ignored.Add(1)
		return
	}
	var reply []byte
	switch {
	case kind == kindMappingProbe && r.cfg.OnMappingProbe != nil:
		r.cfg.OnMappingProbe(token, src)
		return
	case kind == kindKeepalive && r.cfg.Guard.IsTarget(src):
		reply = makePacket(kindKeepaliveEcho, token)
	case kind == kindFan && r.cfg.Guard.answersFan(src.Addr()):
		// A viewer's fan-out socket got through the hole a guess of the
		// camera's spray opened: a punch back tells that socket.
		reply = makePacket(kindPunch, token)
	}
	if reply == nil || !r.cfg.Guard.take() {
		r.ignored.Add(1)
		return
	}
	if _, err := r.cfg.Write(reply, net.UDPAddrFromAddrPort(src)); err == nil {
		r.echoed.Add(1)
	}
}

// Echoed and Ignored count answered and dropped packets.
func (r *Responder) Echoed() uint64  { return r.echoed.Load() }
func (r *Responder) Ignored() uint64 { return r.ignored.Load() }

// Done is closed when the Responder has stopped.
func (r *Responder) Done() <-chan struct{} { return r.done }

// Err is why the Responder stopped, once Done is closed: nil after Close,
// otherwise the read error that ended it (the socket was closed).
func (r *Responder) Err() error {
	<-r.done
	return r.err
}

// Close stops the Responder and waits until its goroutine has ended. It
// is safe to call more than once.
func (r *Responder) Close() error {
	r.cancel()
	<-r.done
	return nil
}

package stream

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/stream/wire"
)

// TestNATChannelOverControlStream carries NAT traversal frames both ways
// over the control stream, next to video, and checks that other unknown
// message types are still skipped.
func TestNATChannelOverControlStream(t *testing.T) {
	camSide := make(chan natwire.Channel, 1)
	env := newTestEnv(t, HubConfig{}, WithNAT(func(ctx context.Context, ch natwire.Channel) {
		camSide <- ch
		<-ctx.Done()
	}))
	env.hub.SetTrack(testTrack)
	c := env.client()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var cam natwire.Channel
	select {
	case cam = <-camSide:
	case <-ctx.Done():
		t.Fatal("WithNAT function not called")
	}

	add := &natwire.AddAddress{Seq: 3, Addr: netip.MustParseAddrPort("192.0.2.7:4433")}
	obs := &natwire.ObservedAddress{Seq: 1, Addr: netip.MustParseAddrPort("[2001:db8::5]:9")}
	for _, f := range []natwire.Frame{add, obs} {
		if err := cam.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []natwire.Frame{add, obs} {
		got, err := c.NATChannel().Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("viewer received %v, want %v", got, want)
		}
	}

	// An unknown type in between is skipped by the camera, not delivered.
	if err := c.writeMessage(&wire.Unknown{MessageType: 0x3f, Payload: []byte{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	punch := &natwire.PunchMeNow{Round: 1, PairedWith: 3, Addr: netip.MustParseAddrPort("198.51.100.2:5000")}
	if err := c.NATChannel().Send(punch); err != nil {
		t.Fatal(err)
	}
	got, err := cam.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, natwire.Frame(punch)) {
		t.Fatalf("camera received %v, want %v", got, punch)
	}
	// Video still flows on the same connection.
	env.hub.Publish(smallAU(0))
	checkFrame(t, readFrame(t, c), smallAU(0))
}

// TestNATMessagesSkippedWithoutNAT: a camera that does not do NAT
// traversal skips the messages like any unknown type (protocol.md §3), so
// a new viewer and an old camera still work together.
func TestNATMessagesSkippedWithoutNAT(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	c := env.client()
	punch := &natwire.PunchMeNow{Round: 1, PairedWith: 0, Addr: netip.MustParseAddrPort("198.51.100.2:5000")}
	if err := c.NATChannel().Send(punch); err != nil {
		t.Fatal(err)
	}
	env.hub.Publish(smallAU(0))
	checkFrame(t, readFrame(t, c), smallAU(0))
}

// TestMalformedNATMessageIsViolation: a 0x40 message whose payload is not
// exactly one NAT traversal frame, or a frame under the wrong type, closes
// the connection with PROTOCOL_VIOLATION.
func TestMalformedNATMessageIsViolation(t *testing.T) {
	for name, m := range map[string]*wire.Unknown{
		"garbage":    {MessageType: 0x40, Payload: []byte{0xff, 0x01}},
		"wrong type": {MessageType: 0x20, Payload: mustAppend(t, &natwire.RemoveAddress{Seq: 1})},
		"trailing":   {MessageType: 0x40, Payload: append(mustAppend(t, &natwire.RemoveAddress{Seq: 1}), 0)},
	} {
		t.Run(name, func(t *testing.T) {
			env := newTestEnv(t, HubConfig{}, WithNAT(func(ctx context.Context, ch natwire.Channel) { <-ctx.Done() }))
			env.hub.SetTrack(testTrack)
			c := env.client()
			if err := c.writeMessage(m); err != nil {
				t.Fatal(err)
			}
			err := waitClosed(t, c.conn)
			var appErr *quic.ApplicationError
			if !errors.As(err, &appErr) || appErr.ErrorCode != quic.ApplicationErrorCode(wire.ErrorProtocolViolation) {
				t.Fatalf("connection closed with %v, want PROTOCOL_VIOLATION", err)
			}
		})
	}
}

func mustAppend(t *testing.T, f natwire.Frame) []byte {
	t.Helper()
	b, err := f.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/quic-go/quic-go/quicvarint"
)

var sampleTrack = media.Track{
	Codec: media.CodecH264, Width: 1280, Height: 720, FPS: 29.97,
	SPS: []byte{0x67, 0x42, 0xc0, 0x1f}, PPS: []byte{0x68, 0xce, 0x3c, 0x80},
}

func TestMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
	}{
		{"hello", &Hello{Version: Version1, Software: "camagent-view/0.1"}},
		{"hello with start", &Hello{Version: Version1, Software: "vlc", Start: StartLive}},
		{"catalog h264", &Catalog{CameraName: "porch", Track: sampleTrack}},
		{"catalog mjpeg", &Catalog{CameraName: "garage ☂", Track: media.Track{Codec: media.CodecMJPEG, Width: 640, Height: 480, FPS: 15}}},
		{"ping", &Ping{Timestamp: 1234567}},
		{"pong", &Pong{Timestamp: quicvarint.Max}},
		{"goaway", &GoAway{Reason: "shutting down"}},
		{"goaway empty", &GoAway{}},
		{"unknown", &Unknown{MessageType: 0x20, Payload: []byte{1, 2, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendMessage([]byte{0xaa}, tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			got, n, err := ParseMessage(b[1:])
			if err != nil || n != len(b)-1 {
				t.Fatalf("ParseMessage = %v, %d, %v; want %d bytes", got, n, err, len(b)-1)
			}
			if !reflect.DeepEqual(got, tt.msg) {
				t.Errorf("ParseMessage = %#v, want %#v", got, tt.msg)
			}
			got, err = ReadMessage(bufio.NewReader(bytes.NewReader(b[1:])))
			if err != nil || !reflect.DeepEqual(got, tt.msg) {
				t.Errorf("ReadMessage = %#v, %v; want %#v", got, err, tt.msg)
			}
		})
	}
}

// TestHelloIgnoresTrailingFields checks the extension rule of protocol.md §2:
// a later version may append fields to a known message.
func TestHelloIgnoresTrailingFields(t *testing.T) {
	payload := []byte{0x01, 0x01, 'v', 0x04, 'l', 'i', 'v', 'e', 0xff, 0xee}
	b, err := AppendMessage(nil, &Unknown{MessageType: TypeHello, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &Hello{Version: 1, Software: "v", Start: "live"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %#v, want %#v", m, want)
	}
}

func TestParseMessageErrors(t *testing.T) {
	huge := quicvarint.Append([]byte{byte(TypePing)}, MaxMessageSize+1)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"truncated type", []byte{0x40}, io.ErrUnexpectedEOF},
		{"no length", []byte{0x03}, io.ErrUnexpectedEOF},
		{"truncated payload", []byte{0x03, 0x02, 0x01}, io.ErrUnexpectedEOF},
		{"over limit", huge, ErrTooLarge},
		{"ping without timestamp", []byte{0x03, 0x00}, ErrMalformed},
		{"hello name overruns", []byte{0x01, 0x03, 0x01, 0x05, 'a'}, ErrMalformed},
		{"hello bad utf8", []byte{0x01, 0x03, 0x01, 0x01, 0xff}, ErrMalformed},
		{"catalog empty codec", catalogPayload(t, "", 1, 1, 1), ErrMalformed},
		{"catalog huge width", catalogPayload(t, "h264", MaxDimension+1, 1, 1), ErrMalformed},
		{"catalog huge fps", catalogPayload(t, "h264", 1, 1, maxMilliFPS+1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseMessage(tt.in)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParseMessage error = %v, want %v", err, tt.want)
			}
			_, err = ReadMessage(bufio.NewReader(bytes.NewReader(tt.in)))
			if !errors.Is(err, tt.want) {
				t.Errorf("ReadMessage error = %v, want %v", err, tt.want)
			}
		})
	}
}

// catalogPayload builds a CATALOG by hand so that it can break the limits
// that AppendMessage enforces.
func catalogPayload(t *testing.T, codec string, width, height, milliFPS uint64) []byte {
	t.Helper()
	var p []byte
	p = append(quicvarint.Append(p, 3), "cam"...)
	p = append(quicvarint.Append(p, uint64(len(codec))), codec...)
	p = quicvarint.Append(p, width)
	p = quicvarint.Append(p, height)
	p = quicvarint.Append(p, milliFPS)
	p = append(p, 0, 0) // no SPS, no PPS
	b, err := AppendMessage(nil, &Unknown{MessageType: TypeCatalog, Payload: p})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendMessageRejects(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
	}{
		{"long name", &Hello{Version: 1, Software: strings.Repeat("x", MaxNameLen+1)}},
		{"bad utf8", &GoAway{Reason: "\xff"}},
		{"varint overflow", &Ping{Timestamp: quicvarint.Max + 1}},
		{"no codec", &Catalog{CameraName: "c"}},
		{"negative size", &Catalog{Track: media.Track{Codec: "h264", Width: -1}}},
		{"NaN fps", &Catalog{Track: media.Track{Codec: "h264", FPS: nanFPS()}}},
		{"big SPS", &Catalog{Track: media.Track{Codec: "h264", SPS: make([]byte, MaxParamSetLen+1)}}},
		{"big unknown", &Unknown{MessageType: 0x30, Payload: make([]byte, MaxMessageSize+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := AppendMessage(nil, tt.msg); err == nil {
				t.Errorf("AppendMessage = %x, want error", b)
			}
		})
	}
}

func nanFPS() float64 {
	zero := 0.0
	return zero / zero
}

func TestFrameRoundTrip(t *testing.T) {
	captured := time.UnixMicro(1_790_000_000_123_456)
	tests := []struct {
		name  string
		frame Frame
	}{
		{"key", Frame{PTS: 0, Captured: captured, Key: true, Payload: []byte{0, 0, 0, 1, 0x65, 0x88}}},
		{"delta", Frame{PTS: 33_333 * time.Microsecond, Captured: captured, Payload: []byte{0, 0, 1, 0x41}}},
		{"no capture time", Frame{PTS: time.Hour, Payload: []byte{0xff, 0xd8}}},
		{"empty payload", Frame{Key: true}},
		{"large", Frame{PTS: 1, Payload: bytes.Repeat([]byte{7}, 200_000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendFrame(nil, tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.frame
			want.PTS = want.PTS.Truncate(time.Microsecond)
			if len(want.Payload) == 0 {
				want.Payload = nil
			}
			got, n, err := ParseFrame(b)
			if err != nil || n != len(b) {
				t.Fatalf("ParseFrame: %d bytes of %d, %v", n, len(b), err)
			}
			if len(got.Payload) == 0 {
				got.Payload = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseFrame = %+v, want %+v", got, want)
			}
			got, err = ReadFrame(bufio.NewReader(bytes.NewReader(b)))
			if len(got.Payload) == 0 {
				got.Payload = nil
			}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("ReadFrame = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}

func TestFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"end of group", nil, io.EOF},
		{"over limit", quicvarint.Append(nil, MaxFrameSize+1), ErrTooLarge},
		{"too short", []byte{0x02, 0x00, 0x00}, ErrMalformed},
		{"truncated body", []byte{0x05, 0x00, 0x00, 0x01}, io.ErrUnexpectedEOF},
		{"pts overflows duration", append([]byte{0x0a}, quicvarint.Append(nil, quicvarint.Max)...), ErrMalformed},
		{"truncated field", []byte{0x03, 0x00, 0x80, 0x00}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if tt.name == "pts overflows duration" {
				in = append(in, 0x00, 0x01) // capture time, flags
			}
			if _, _, err := ParseFrame(in); !errors.Is(err, tt.want) {
				t.Errorf("ParseFrame error = %v, want %v", err, tt.want)
			}
			if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(in))); !errors.Is(err, tt.want) {
				t.Errorf("ReadFrame error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAppendFrameRejects(t *testing.T) {
	if _, err := AppendFrame(nil, Frame{PTS: -1}); err == nil {
		t.Error("negative PTS accepted")
	}
	if _, err := AppendFrame(nil, Frame{Payload: make([]byte, MaxFrameSize)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
}

func TestGroupHeader(t *testing.T) {
	for _, seq := range []uint64{1, 63, 64, 1 << 20, quicvarint.Max} {
		b, err := AppendGroupHeader(nil, GroupHeader{Sequence: seq})
		if err != nil {
			t.Fatal(err)
		}
		h, n, err := ParseGroupHeader(b)
		if err != nil || n != len(b) || h.Sequence != seq {
			t.Errorf("ParseGroupHeader(%x) = %v, %d, %v", b, h, n, err)
		}
		r := bufio.NewReader(bytes.NewReader(b))
		typ, err := ReadStreamType(r)
		if err != nil || typ != StreamGroup {
			t.Fatalf("ReadStreamType = %v, %v", typ, err)
		}
		if h, err := ReadGroupHeader(r); err != nil || h.Sequence != seq {
			t.Errorf("ReadGroupHeader = %v, %v", h, err)
		}
	}
	if _, err := AppendGroupHeader(nil, GroupHeader{Sequence: quicvarint.Max + 1}); err == nil {
		t.Error("oversized sequence accepted")
	}
	for _, bad := range [][]byte{nil, {0x02, 0x01}, {0x01}, {0x01, 0x40}} {
		if _, _, err := ParseGroupHeader(bad); err == nil {
			t.Errorf("ParseGroupHeader(%x) accepted", bad)
		}
	}
}

func TestErrorCodeString(t *testing.T) {
	if got := ErrorStaleGroup.String(); got != "STALE_GROUP" {
		t.Errorf("got %q", got)
	}
	if got := ErrorCode(0x99).String(); got != "ERROR_0x99" {
		t.Errorf("got %q", got)
	}
}

package wire

import (
	"bytes"
	"testing"
	"time"
)

// TestProtocolDocExample keeps the example in docs/protocol.md §5 true.
func TestProtocolDocExample(t *testing.T) {
	b, err := AppendGroupHeader(nil, GroupHeader{Sequence: 7})
	if err != nil {
		t.Fatal(err)
	}
	b, err = AppendFrame(b, Frame{
		Captured: time.UnixMicro(1_790_000_000_000_000),
		Key:      true,
		Payload:  []byte{0, 0, 0, 1, 0x65},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x01, 0x07, 0x0f, 0x00, 0xc0, 0x06, 0x5b, 0xfe, 0xda, 0x25, 0xe0, 0x00, 0x01, 0, 0, 0, 1, 0x65}
	if !bytes.Equal(b, want) {
		t.Errorf("got  % x\nwant % x", b, want)
	}
}

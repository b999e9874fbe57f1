package wire

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"
	"time"
)

// Each fuzz target checks that parsing never panics and that whatever parses
// re-encodes to something that parses to the same value.

func FuzzParseMessage(f *testing.F) {
	for _, m := range []Message{
		&Hello{Version: Version1, Software: "camagent-view", Start: StartLive},
		&Catalog{CameraName: "porch", Track: sampleTrack},
		&Ping{Timestamp: 99}, &Pong{Timestamp: 99}, &GoAway{Reason: "bye"},
		&Unknown{MessageType: 0x40, Payload: []byte("nat")},
	} {
		b, err := AppendMessage(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := ParseMessage(b)
		readM, readErr := ReadMessage(bufio.NewReader(bytes.NewReader(b)))
		if (err == nil) != (readErr == nil) {
			t.Fatalf("ParseMessage error %v but ReadMessage error %v", err, readErr)
		}
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		if !reflect.DeepEqual(m, readM) {
			t.Fatalf("ParseMessage %#v != ReadMessage %#v", m, readM)
		}
		again, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", m, err)
		}
		m2, _, err := ParseMessage(again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip %#v -> %#v, %v", m, m2, err)
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	for _, fr := range []Frame{
		{PTS: 0, Captured: time.UnixMicro(1_790_000_000_000_000), Key: true, Payload: []byte{0, 0, 0, 1, 0x65}},
		{PTS: time.Second, Payload: []byte{0xff, 0xd8, 0xff, 0xd9}},
	} {
		b, err := AppendFrame(nil, fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x03, 0x00, 0x00, 0xfe})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := ParseFrame(b)
		readFr, readErr := ReadFrame(bufio.NewReader(bytes.NewReader(b)))
		if (err == nil) != (readErr == nil) {
			t.Fatalf("ParseFrame error %v but ReadFrame error %v", err, readErr)
		}
		if err != nil {
			return
		}
		if n > len(b) || !bytes.Equal(fr.Payload, readFr.Payload) || fr.PTS != readFr.PTS {
			t.Fatalf("ParseFrame %+v (%d bytes) != ReadFrame %+v", fr, n, readFr)
		}
		again, err := AppendFrame(nil, fr)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		fr2, _, err := ParseFrame(again)
		if err != nil || fr2.PTS != fr.PTS || !fr2.Captured.Equal(fr.Captured) || fr2.Key != fr.Key || !bytes.Equal(fr2.Payload, fr.Payload) {
			t.Fatalf("round trip %+v -> %+v, %v", fr, fr2, err)
		}
	})
}

func FuzzParseGroupHeader(f *testing.F) {
	f.Add([]byte{0x01, 0x01})
	f.Add([]byte{0x01, 0x80, 0x00, 0x10, 0x00})
	f.Add([]byte{0x02, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseGroupHeader(b)
		r := bufio.NewReader(bytes.NewReader(b))
		typ, readErr := ReadStreamType(r)
		if readErr == nil && typ == StreamGroup {
			var rh GroupHeader
			rh, readErr = ReadGroupHeader(r)
			if readErr == nil && err == nil && rh != h {
				t.Fatalf("ParseGroupHeader %v != ReadGroupHeader %v", h, rh)
			}
		}
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		again, err := AppendGroupHeader(nil, h)
		if err != nil {
			t.Fatal(err)
		}
		if h2, _, err := ParseGroupHeader(again); err != nil || h2 != h {
			t.Fatalf("round trip %v -> %v, %v", h, h2, err)
		}
	})
}

package recwire

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	req := Request{Op: OpPlay, From: time.Unix(100, 5).UTC(), To: time.Unix(200, 0).UTC()}
	frames := []Frame{{Key: true, Captured: time.Unix(100, 1), Data: []byte{0, 0, 1, 0x65}}, {Captured: time.Unix(100, 2), Data: []byte{}}}
	if err := WriteMessage(&buf, req); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	WriteEnd(&buf)
	var got Request
	if err := ReadMessage(&buf, &got); err != nil || got != req {
		t.Fatalf("%+v %v", got, err)
	}
	for _, want := range frames {
		f, err := ReadFrame(&buf)
		if err != nil || f.Key != want.Key || !f.Captured.Equal(want.Captured) || !bytes.Equal(f.Data, want.Data) {
			t.Fatalf("%+v %v, want %+v", f, err, want)
		}
	}
	if _, err := ReadFrame(&buf); err != io.EOF {
		t.Fatalf("end record: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"huge message", []byte{0xff, 0xff, 0xff, 0xff}, ErrTooLarge},
		{"cut message", []byte{0, 0, 0, 10, '{'}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		var r Request
		if err := ReadMessage(bytes.NewReader(tt.data), &r); !errors.Is(err, tt.want) {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0})); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge frame: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})); !errors.Is(err, ErrBadKind) {
		t.Fatalf("bad kind: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(nil)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("missing end record: %v", err)
	}
}

func FuzzReadMessage(f *testing.F) {
	var buf bytes.Buffer
	WriteMessage(&buf, Request{Op: OpList, ID: "x"})
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req Request
		ReadMessage(bytes.NewReader(data), &req)
		var resp Response
		ReadMessage(bytes.NewReader(data), &resp)
	})
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	WriteFrame(&buf, Frame{Key: true, Captured: time.Unix(1, 0), Data: []byte{1, 2, 3}})
	WriteEnd(&buf)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 100 {
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(fr.Data) > MaxFrame {
				t.Fatal("oversized frame accepted")
			}
		}
	})
}

package recwire

import (
	"bytes"
	"errors"
	"io"
	"runtime"
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

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func claim(n uint32, body []byte) []byte {
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

func TestReadRequestRefusesLargeClaimsUnread(t *testing.T) {
	for _, n := range []uint32{MaxRequest + 1, MaxMessage, 1 << 31} {
		cr := &countingReader{r: bytes.NewReader(claim(n, bytes.Repeat([]byte{' '}, 8192)))}
		if _, err := ReadRequest(cr); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("claim %d: %v", n, err)
		}
		if cr.n != 4 {
			t.Fatalf("claim %d: read %d bytes, want only the 4-byte length", n, cr.n)
		}
	}
	// A request at the limit is read.
	body := []byte(`{"op":"list","id":"` + string(bytes.Repeat([]byte{'x'}, MaxRequest-21)) + `"}`)
	if len(body) != MaxRequest {
		t.Fatalf("test body %d bytes", len(body))
	}
	if req, err := ReadRequest(bytes.NewReader(claim(uint32(len(body)), body))); err != nil || req.Op != OpList {
		t.Fatalf("request at the limit: %+v %v", req, err)
	}
}

// TestClaimedSizeNotAllocated: a message that claims 1 MiB and sends a few
// bytes costs what arrived, not what was claimed.
func TestClaimedSizeNotAllocated(t *testing.T) {
	data := claim(MaxMessage, []byte(`{"op":`))
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		var v Response
		if err := ReadMessage(bytes.NewReader(data), &v); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 4<<10 {
		t.Fatalf("a 1 MiB claim with 6 bytes of body allocated %d bytes", per)
	}
}

func FuzzReadRequest(f *testing.F) {
	var buf bytes.Buffer
	WriteMessage(&buf, Request{Op: OpPlay, From: time.Unix(100, 0).UTC(), To: time.Unix(200, 0).UTC()})
	f.Add(buf.Bytes())
	f.Add(claim(2, []byte("{}")))
	f.Add(claim(MaxRequest+1, []byte("{}")))
	f.Add(claim(MaxMessage, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		req, err := ReadRequest(cr)
		if cr.n > 4+MaxRequest {
			t.Fatalf("read %d bytes of a request", cr.n)
		}
		if err != nil {
			return
		}
		if cr.n > len(data) || cr.n < 4 {
			t.Fatalf("accepted a request of %d bytes from %d", cr.n, len(data))
		}
		// What was accepted survives a round trip.
		var again bytes.Buffer
		if WriteMessage(&again, req) != nil || again.Len() > 4+MaxRequest {
			return // e.g. a year JSON cannot carry, or escapes that grew it
		}
		back, err := ReadRequest(&again)
		if err != nil || back.Op != req.Op || back.ID != req.ID || !back.From.Equal(req.From) || !back.To.Equal(req.To) {
			t.Fatalf("round trip: %+v -> %+v, %v", req, back, err)
		}
	})
}

package mp4scan

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/fmp4"
	"github.com/camagent/camagent/internal/base/media/mediatest"
)

// recording writes n access units as fragmented MP4 and returns the file
// and the byte offsets at which each fragment ended.
func recording(t testing.TB, n int) ([]byte, []int64) {
	t.Helper()
	var buf bytes.Buffer
	var ends []int64
	w, err := fmp4.NewWriter(&buf, mediatest.Stream160x120.Track(), fmp4.Options{
		MaxFragmentDuration: 500 * time.Millisecond,
		AfterFragment:       func() error { ends = append(ends, int64(buf.Len())); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, au := range mediatest.Stream160x120.AccessUnits(n, time.Unix(0, 0)) {
		if err := w.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), ends
}

func TestScanComplete(t *testing.T) {
	file, ends := recording(t, 90)
	l, err := Scan(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Fragments) != len(ends) || l.ValidEnd != int64(len(file)) || l.Torn != "" {
		t.Fatalf("layout %+v, want %d fragments ending at %d", l, len(ends), len(file))
	}
	frames := 0
	var next uint64
	for i, f := range l.Fragments {
		if f.End() != ends[i] {
			t.Fatalf("fragment %d ends at %d, writer says %d", i, f.End(), ends[i])
		}
		s, err := ReadSamples(bytes.NewReader(file), f)
		if err != nil {
			t.Fatal(err)
		}
		if s[0].DecodeTime != next {
			t.Fatalf("fragment %d starts at %d, previous ended at %d", i, s[0].DecodeTime, next)
		}
		last := s[len(s)-1]
		next = last.DecodeTime + uint64(last.Duration)
		frames += len(s)
	}
	if frames != 90 {
		t.Fatalf("read %d samples, wrote 90", frames)
	}
}

// TestScanTruncated cuts the file at every offset: the valid part must be
// exactly the fragments wholly before the cut.
func TestScanTruncated(t *testing.T) {
	file, ends := recording(t, 60)
	l0, _ := Scan(bytes.NewReader(file), int64(len(file)))
	for cut := int64(0); cut <= int64(len(file)); cut++ {
		l, err := Scan(bytes.NewReader(file[:cut]), cut)
		if cut < l0.InitEnd {
			if !errors.Is(err, ErrNoInit) {
				t.Fatalf("cut at %d inside the init segment: err %v", cut, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		want, complete := l0.InitEnd, 0
		for _, e := range ends {
			if e <= cut {
				want, complete = e, complete+1
			}
		}
		if l.ValidEnd != want || len(l.Fragments) != complete {
			t.Fatalf("cut at %d: valid to %d with %d fragments, want %d with %d", cut, l.ValidEnd, len(l.Fragments), want, complete)
		}
		if (l.Torn != "") != (cut != want) {
			t.Fatalf("cut at %d: torn=%q", cut, l.Torn)
		}
	}
}

func TestScanGarbage(t *testing.T) {
	file, _ := recording(t, 30)
	l0, _ := Scan(bytes.NewReader(file), int64(len(file)))
	tests := []struct {
		name string
		tail []byte
	}{
		{"zeros", make([]byte, 4096)},
		{"size zero box", []byte{0, 0, 0, 0, 'm', 'o', 'o', 'f'}},
		{"binary type", []byte{0, 0, 0, 16, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"lone mdat", []byte{0, 0, 0, 8, 'm', 'd', 'a', 't'}},
		{"huge largesize", []byte{0, 0, 0, 1, 'm', 'o', 'o', 'f', 0xff, 0, 0, 0, 0, 0, 0, 0}},
		{"moof then free", []byte{0, 0, 0, 8, 'm', 'o', 'o', 'f', 0, 0, 0, 8, 'f', 'r', 'e', 'e'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := append(bytes.Clone(file), tt.tail...)
			l, err := Scan(bytes.NewReader(f), int64(len(f)))
			if err != nil || l.ValidEnd != l0.ValidEnd || l.Torn == "" {
				t.Fatalf("layout %+v err %v, want valid to %d and torn", l, err, l0.ValidEnd)
			}
		})
	}
	if _, err := Scan(bytes.NewReader([]byte("not an mp4 file at all")), 22); !errors.Is(err, ErrNoInit) {
		t.Fatalf("text file: %v", err)
	}
}

func FuzzScan(f *testing.F) {
	file, _ := recording(f, 20)
	f.Add(file)
	f.Add(file[:len(file)/2])
	f.Add(file[:100])
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Scan(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if l.ValidEnd > int64(len(data)) || l.InitEnd > l.ValidEnd {
			t.Fatalf("layout %+v beyond %d bytes", l, len(data))
		}
		for _, fr := range l.Fragments {
			if fr.End() > l.ValidEnd {
				t.Fatalf("fragment %+v beyond valid end %d", fr, l.ValidEnd)
			}
			_, _ = ReadSamples(bytes.NewReader(data), fr) // must not panic
		}
	})
}

package fmp4

import (
	"bytes"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// FuzzWriteAccessUnit feeds arbitrary access units, after a valid key frame
// or instead of one, and requires errors rather than panics, and a file
// mp4ff can read back whenever the writer reported success.
func FuzzWriteAccessUnit(f *testing.F) {
	aus := testAccessUnits()
	for _, au := range aus[:3] {
		f.Add(au.Data, true, true)
		f.Add(au.Data, false, false)
	}
	f.Add([]byte{0, 0, 0, 1, 0x65}, true, false)
	track := testStream.Track()
	f.Fuzz(func(t *testing.T, data []byte, key, knownTrack bool) {
		tr := media.Track{Codec: media.CodecH264}
		if knownTrack {
			tr = track
		}
		var buf bytes.Buffer
		w, err := NewWriter(&buf, tr, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteAccessUnit(aus[0]); err != nil {
			t.Fatal(err)
		}
		fuzzed := media.AccessUnit{Codec: media.CodecH264, Data: data, Key: key, PTS: time.Second}
		if err := w.WriteAccessUnit(fuzzed); err != nil {
			return
		}
		if err := w.Close(); err != nil {
			return
		}
		if _, samples := parse(t, buf.Bytes()); len(samples) != 2 {
			t.Fatalf("%d samples, want 2", len(samples))
		}
	})
}

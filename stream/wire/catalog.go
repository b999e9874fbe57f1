package wire

import (
	"fmt"
	"math"

	"github.com/camagent/camagent/internal/base/media"
)

// maxMilliFPS bounds the frame rate field (1000 fps).
const maxMilliFPS = 1000 * 1000

// Catalog describes the camera and its one video track (protocol.md §3.2).
// The camera sends it after HELLO and again whenever the track changes.
type Catalog struct {
	CameraName string
	Track      media.Track
}

// Type returns TypeCatalog.
func (*Catalog) Type() MessageType { return TypeCatalog }

func (m *Catalog) appendPayload(e *encoder) {
	t := m.Track
	if e.err == nil {
		e.err = checkTrack(t)
	}
	e.text(m.CameraName, MaxNameLen, "camera name")
	e.text(string(t.Codec), MaxNameLen, "codec")
	e.varint(uint64(t.Width))
	e.varint(uint64(t.Height))
	e.varint(uint64(math.Round(t.FPS * 1000)))
	e.bytes(t.SPS, MaxParamSetLen, "SPS")
	e.bytes(t.PPS, MaxParamSetLen, "PPS")
}

// checkTrack keeps the sender within the limits the parser enforces.
func checkTrack(t media.Track) error {
	if t.Codec == "" {
		return fmt.Errorf("track has no codec")
	}
	if t.Width < 0 || t.Width > MaxDimension || t.Height < 0 || t.Height > MaxDimension {
		return fmt.Errorf("track size %dx%d out of range", t.Width, t.Height)
	}
	if !(t.FPS >= 0 && t.FPS*1000 <= maxMilliFPS) { // also rejects NaN
		return fmt.Errorf("track frame rate %v out of range", t.FPS)
	}
	return nil
}

func parseCatalog(d *decoder) *Catalog {
	m := &Catalog{CameraName: d.text(MaxNameLen, "camera name")}
	t := &m.Track
	t.Codec = media.Codec(d.text(MaxNameLen, "codec"))
	width, height, milliFPS := d.varint(), d.varint(), d.varint()
	t.SPS = cloneNonEmpty(d.bytes(MaxParamSetLen, "SPS"))
	t.PPS = cloneNonEmpty(d.bytes(MaxParamSetLen, "PPS"))
	if d.err != nil {
		return m
	}
	switch {
	case t.Codec == "":
		d.fail(malformed("empty codec"))
	case width > MaxDimension || height > MaxDimension:
		d.fail(malformed("track size %dx%d out of range", width, height))
	case milliFPS > maxMilliFPS:
		d.fail(malformed("frame rate %d/1000 out of range", milliFPS))
	}
	t.Width, t.Height, t.FPS = int(width), int(height), float64(milliFPS)/1000
	return m
}

// cloneNonEmpty copies b so that a Catalog does not pin the read buffer,
// and keeps nil for absent parameter sets.
func cloneNonEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

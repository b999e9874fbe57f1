// Package mp4scan walks the top-level boxes of a fragmented MP4 recording
// (ISO/IEC 14496-12 §4.2 box headers, §8.8 movie fragments) to find where
// its last complete fragment ends, so that a file cut by a power loss or a
// killed process can be trimmed back to something every player reads.
package mp4scan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors returned by Scan.
var (
	// ErrNoInit means the file does not start with a complete ftyp+moov:
	// nothing in it is playable.
	ErrNoInit = errors.New("mp4scan: no complete ftyp+moov at the start")
)

// Fragment is one movie fragment: a moof box and the mdat box that follows
// it, as byte ranges of the file.
type Fragment struct {
	Offset   int64 // start of the moof box
	MoofSize int64
	MdatSize int64
}

// End is the offset just after the fragment's mdat.
func (f Fragment) End() int64 { return f.Offset + f.MoofSize + f.MdatSize }

// Layout is what Scan found.
type Layout struct {
	// InitEnd is the end of the moov box (the init segment).
	InitEnd int64
	// Fragments are the complete moof+mdat pairs in file order.
	Fragments []Fragment
	// ValidEnd is where the playable part of the file ends: the end of the
	// last complete fragment, or InitEnd if there is none. Bytes beyond it
	// are a torn write.
	ValidEnd int64
	// Torn is a description of what follows ValidEnd, "" if nothing does.
	Torn string
}

// header is one box header (§4.2: 32-bit size and type, size 1 means a
// 64-bit largesize follows, size 0 means "to the end of the file").
type header struct {
	typ  string
	size int64 // whole box, header included
}

// maxBoxSize bounds any one box we accept (a 1 s fragment of 4K video is
// a few MB); a larger size field is a corrupt header, not a real box.
const maxBoxSize = 1 << 30

// readHeader reads the box header at off. ok is false, with a reason, when
// the header is incomplete or not a plausible box.
func readHeader(r io.ReaderAt, off, fileSize int64) (h header, reason string) {
	var b [16]byte
	if fileSize-off < 8 {
		return h, "incomplete box header"
	}
	if _, err := r.ReadAt(b[:8], off); err != nil {
		return h, fmt.Sprintf("read box header: %v", err)
	}
	size := int64(binary.BigEndian.Uint32(b[:4]))
	h.typ = string(b[4:8])
	if !printable(b[4:8]) {
		return h, fmt.Sprintf("box type %q is not a four-character code", h.typ)
	}
	hdrLen := int64(8)
	switch size {
	case 0:
		// "Box extends to the end of the file" (§4.2): a writer that never
		// finished; we never write it, so treat it as torn.
		return h, fmt.Sprintf("%s box with size 0", h.typ)
	case 1:
		if fileSize-off < 16 {
			return h, "incomplete largesize header"
		}
		if _, err := r.ReadAt(b[8:16], off+8); err != nil {
			return h, fmt.Sprintf("read largesize: %v", err)
		}
		large := binary.BigEndian.Uint64(b[8:16])
		if large > maxBoxSize {
			return h, fmt.Sprintf("%s box of %d bytes is implausible", h.typ, large)
		}
		size, hdrLen = int64(large), 16
	}
	if size < hdrLen || size > maxBoxSize {
		return h, fmt.Sprintf("%s box has bad size %d", h.typ, size)
	}
	if off+size > fileSize {
		return h, fmt.Sprintf("%s box of %d bytes cut at %d", h.typ, size, fileSize-off)
	}
	h.size = size
	return h, ""
}

func printable(t []byte) bool {
	for _, c := range t {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// Scan reads box headers (never payloads) from r, whose length is size.
// The file must start with ftyp and moov; after them come moof+mdat pairs,
// and any other complete box (free, styp, sidx) is skipped. Scanning stops
// at the first incomplete or implausible box, or a moof without its mdat:
// everything from there on is reported as torn. The error is ErrNoInit if
// the init segment itself is incomplete.
func Scan(r io.ReaderAt, size int64) (Layout, error) {
	var l Layout
	off := int64(0)
	var sawFtyp, sawMoov bool
	for !sawMoov {
		h, reason := readHeader(r, off, size)
		if reason != "" {
			return l, fmt.Errorf("%w: %s", ErrNoInit, reason)
		}
		switch {
		case h.typ == "ftyp" && off == 0:
			sawFtyp = true
		case h.typ == "moov" && sawFtyp:
			sawMoov = true
		case off == 0:
			return l, fmt.Errorf("%w: file starts with %q", ErrNoInit, h.typ)
		}
		off += h.size
	}
	l.InitEnd, l.ValidEnd = off, off
	for off < size {
		h, reason := readHeader(r, off, size)
		if reason != "" {
			l.Torn = reason
			return l, nil
		}
		switch h.typ {
		case "mdat":
			l.Torn = "mdat without a moof"
			return l, nil
		case "moof":
			m, reason := readHeader(r, off+h.size, size)
			if reason == "" && m.typ != "mdat" {
				reason = fmt.Sprintf("moof followed by %q, not mdat", m.typ)
			}
			if reason != "" {
				l.Torn = "fragment without its mdat: " + reason
				return l, nil
			}
			l.Fragments = append(l.Fragments, Fragment{Offset: off, MoofSize: h.size, MdatSize: m.size})
			off += h.size + m.size
		default:
			off += h.size
		}
		l.ValidEnd = off
	}
	return l, nil
}

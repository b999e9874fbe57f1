// Package h264 handles H.264 elementary streams: Annex-B splitting and
// joining, AVCC (length-prefixed) conversion, NAL unit types, key-frame
// detection and SPS/PPS extraction and size parsing.
//
// Parsing of Annex-B and of the SPS is delegated to
// github.com/bluenviron/mediacommon; this package adds the checks that make
// its results safe to act on (no empty NAL units, sane picture sizes) and the
// small helpers the encoder and the MP4 writer share.
// Spec: ITU-T Rec. H.264 (Annex B for the byte stream, 7.3.2.1 for the SPS).
package h264

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	mch264 "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// NALUType is the nal_unit_type field of a NAL unit header (7.4.1).
type NALUType = mch264.NALUType

// NAL unit types camagent acts on.
const (
	NALUTypeNonIDR NALUType = mch264.NALUTypeNonIDR
	NALUTypeIDR    NALUType = mch264.NALUTypeIDR
	NALUTypeSEI    NALUType = mch264.NALUTypeSEI
	NALUTypeSPS    NALUType = mch264.NALUTypeSPS
	NALUTypePPS    NALUType = mch264.NALUTypePPS
	NALUTypeAUD    NALUType = mch264.NALUTypeAccessUnitDelimiter
)

// Errors returned by the parsers.
var (
	ErrNoNALUs     = errors.New("h264: no NAL units")
	ErrNoStartCode = errors.New("h264: Annex-B data does not begin with a start code")
	ErrBadLength   = errors.New("h264: NAL unit length exceeds buffer")
	ErrBadSPSSize  = errors.New("h264: SPS gives an implausible picture size")
)

// startCode is the 4-byte Annex-B start code used when writing.
var startCode = []byte{0, 0, 0, 1}

// Type returns the type of a NAL unit, or 0 (unspecified) if it is empty.
func Type(nalu []byte) NALUType {
	if len(nalu) == 0 {
		return 0
	}
	return NALUType(nalu[0] & 0x1f)
}

// IsVCL reports whether a NAL unit carries slice data (types 1 to 5),
// as opposed to parameter sets, SEI and delimiters.
func IsVCL(nalu []byte) bool {
	t := Type(nalu)
	return t >= NALUTypeNonIDR && t <= NALUTypeIDR
}

// SplitAnnexB splits an Annex-B access unit into NAL units (without start
// codes). The returned slices alias au. Trailing zero bytes before a start
// code are trailing_zero_8bits, not NAL unit data (7.4.1: the last byte of a
// NAL unit is never 0x00), so they are trimmed, and units left empty are
// dropped.
func SplitAnnexB(au []byte) ([][]byte, error) {
	// mediacommon's own start check (v2.5.0) accepts any buffer whose third
	// byte is 0x01, through an operator-precedence slip; check here.
	if !bytes.HasPrefix(au, startCode[1:]) && !bytes.HasPrefix(au, startCode) {
		return nil, ErrNoStartCode
	}
	var a mch264.AnnexB
	if err := a.Unmarshal(au); err != nil {
		return nil, fmt.Errorf("h264: split Annex-B: %w", err)
	}
	nalus := a[:0]
	for _, n := range a {
		n = bytes.TrimRight(n, "\x00")
		if len(n) > 0 {
			nalus = append(nalus, n)
		}
	}
	if len(nalus) == 0 {
		return nil, ErrNoNALUs
	}
	return nalus, nil
}

// JoinAnnexB joins NAL units into one Annex-B access unit with 4-byte start
// codes.
func JoinAnnexB(nalus [][]byte) []byte {
	size := 0
	for _, n := range nalus {
		size += len(startCode) + len(n)
	}
	out := make([]byte, 0, size)
	for _, n := range nalus {
		out = append(out, startCode...)
		out = append(out, n...)
	}
	return out
}

// JoinAVCC joins NAL units into AVCC form: each unit preceded by its length
// as a 4-byte big-endian integer (ISO/IEC 14496-15, lengthSizeMinusOne = 3).
func JoinAVCC(nalus [][]byte) []byte {
	size := 0
	for _, n := range nalus {
		size += 4 + len(n)
	}
	out := make([]byte, 0, size)
	for _, n := range nalus {
		out = binary.BigEndian.AppendUint32(out, uint32(len(n)))
		out = append(out, n...)
	}
	return out
}

// SplitAVCC splits an AVCC sample (4-byte lengths) into NAL units, which
// alias b. Unlike mediacommon's AVCC parser it has no cap on the number of
// NAL units, since hardware encoders may emit one slice per macroblock row.
func SplitAVCC(b []byte) ([][]byte, error) {
	var nalus [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, ErrBadLength
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, ErrBadLength
		}
		if n > 0 {
			nalus = append(nalus, b[:n])
		}
		b = b[n:]
	}
	if len(nalus) == 0 {
		return nil, ErrNoNALUs
	}
	return nalus, nil
}

// AnnexBToAVCC converts an Annex-B access unit to an AVCC sample.
func AnnexBToAVCC(au []byte) ([]byte, error) {
	nalus, err := SplitAnnexB(au)
	if err != nil {
		return nil, err
	}
	return JoinAVCC(nalus), nil
}

// AVCCToAnnexB converts an AVCC sample to an Annex-B access unit.
func AVCCToAnnexB(b []byte) ([]byte, error) {
	nalus, err := SplitAVCC(b)
	if err != nil {
		return nil, err
	}
	return JoinAnnexB(nalus), nil
}

// HasType reports whether any of the NAL units has type t.
func HasType(nalus [][]byte, t NALUType) bool {
	for _, n := range nalus {
		if Type(n) == t {
			return true
		}
	}
	return false
}

// IsKeyFrame reports whether an Annex-B access unit contains an IDR slice,
// i.e. whether decoding can start there. Unparsable input is not a key
// frame.
func IsKeyFrame(au []byte) bool {
	nalus, err := SplitAnnexB(au)
	return err == nil && HasType(nalus, NALUTypeIDR)
}

// ParameterSets returns the first SPS and the first PPS found in an Annex-B
// access unit, or nil for those absent. The slices alias au.
func ParameterSets(au []byte) (sps, pps []byte) {
	nalus, err := SplitAnnexB(au)
	if err != nil {
		return nil, nil
	}
	return FindParameterSets(nalus)
}

// FindParameterSets is ParameterSets over already split NAL units.
func FindParameterSets(nalus [][]byte) (sps, pps []byte) {
	for _, n := range nalus {
		switch Type(n) {
		case NALUTypeSPS:
			if sps == nil {
				sps = n
			}
		case NALUTypePPS:
			if pps == nil {
				pps = n
			}
		}
	}
	return sps, pps
}

// WithParameterSets makes sure a key access unit carries an SPS and a PPS in
// band: if nalus holds an IDR slice but lacks either, the given sps and pps
// are inserted before the first non-delimiter NAL unit (an access unit
// delimiter must stay first, 7.4.1.2.3). Other access units are returned
// unchanged, as are key units when sps or pps is empty; inserted reports
// whether anything was added.
func WithParameterSets(nalus [][]byte, sps, pps []byte) (out [][]byte, inserted bool) {
	if len(sps) == 0 || len(pps) == 0 || !HasType(nalus, NALUTypeIDR) {
		return nalus, false
	}
	haveSPS, havePPS := FindParameterSets(nalus)
	if haveSPS != nil && havePPS != nil {
		return nalus, false
	}
	at := 0
	for at < len(nalus) && Type(nalus[at]) == NALUTypeAUD {
		at++
	}
	out = make([][]byte, 0, len(nalus)+2)
	out = append(out, nalus[:at]...)
	out = append(out, sps, pps)
	for _, n := range nalus[at:] {
		// Drop a lone in-band SPS or PPS: the pair just inserted replaces it.
		if t := Type(n); t != NALUTypeSPS && t != NALUTypePPS {
			out = append(out, n)
		}
	}
	return out, true
}

// maxDimension bounds the accepted picture size. Level 6.2 allows 139264
// macroblocks per frame; 16384 pixels per side is well beyond any camera and
// keeps width*height far from overflowing an int on 32-bit boards.
const maxDimension = 16384

// SPSInfo is what camagent needs from a sequence parameter set.
type SPSInfo struct {
	Width, Height int     // display size, cropping applied
	Profile       uint8   // profile_idc
	Level         uint8   // level_idc
	FPS           float64 // from VUI timing info, 0 if absent
}

// ParseSPS parses an SPS NAL unit (header byte included, no start code).
func ParseSPS(sps []byte) (SPSInfo, error) {
	var s mch264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return SPSInfo{}, fmt.Errorf("h264: parse SPS: %w", err)
	}
	// Width and Height compute in uint32 and can wrap on hostile input;
	// bound the coded size before trusting them.
	if s.PicWidthInMbsMinus1 >= maxDimension/16 || s.PicHeightInMapUnitsMinus1 >= maxDimension/16 {
		return SPSInfo{}, ErrBadSPSSize
	}
	if c := s.FrameCropping; c != nil && (c.LeftOffset > maxDimension || c.RightOffset > maxDimension ||
		c.TopOffset > maxDimension || c.BottomOffset > maxDimension) {
		return SPSInfo{}, ErrBadSPSSize
	}
	w, h := s.Width(), s.Height()
	if w <= 0 || h <= 0 || w > maxDimension || h > maxDimension {
		return SPSInfo{}, ErrBadSPSSize
	}
	fps := s.FPS()
	if math.IsNaN(fps) || fps <= 0 || fps > 1000 { // absent or nonsense timing info
		fps = 0
	}
	return SPSInfo{Width: w, Height: h, Profile: s.ProfileIdc, Level: s.LevelIdc, FPS: fps}, nil
}

// ParseSize returns the display size coded in an SPS, cropping applied.
func ParseSize(sps []byte) (w, h int, err error) {
	info, err := ParseSPS(sps)
	if err != nil {
		return 0, 0, err
	}
	return info.Width, info.Height, nil
}

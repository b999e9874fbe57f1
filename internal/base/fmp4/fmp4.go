// Package fmp4 writes H.264 access units as fragmented MP4 (ISO/IEC
// 14496-12 movie fragments, avc3 sample entry per 14496-15) over
// github.com/Eyevinn/mp4ff. A fragmented file is playable up to its last
// complete fragment, which suits recordings that may be cut by a power loss.
package fmp4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
)

// Timescale is the track timescale in ticks per second (the RTP/MPEG clock).
const Timescale = 90000

// DefaultMaxFragmentDuration is used when Options.MaxFragmentDuration is 0.
const DefaultMaxFragmentDuration = time.Second

// Options tune a Writer.
type Options struct {
	// MaxFragmentDuration bounds a fragment; a new one also starts at every
	// key frame.
	MaxFragmentDuration time.Duration
	// AfterFragment, if set, is called once each fragment (moof+mdat) has
	// been written to the io.Writer, e.g. to fsync a recording. An error
	// is returned by the write that completed the fragment.
	AfterFragment func() error
}

// Errors returned by the Writer.
var (
	ErrUnsupportedCodec = errors.New("fmp4: only H.264 can be written")
	// ErrParameterSetsChanged means an SPS with a different picture size
	// arrived mid-stream: a track has one size, so start a new file.
	ErrParameterSetsChanged = errors.New("fmp4: H.264 picture size changed; start a new file")
	ErrNoParameterSets      = errors.New("fmp4: first key frame carries no SPS/PPS and the track has none")
	ErrClosed               = errors.New("fmp4: writer closed")
)

// sample is an access unit converted to an MP4 sample, held back until the
// next one gives its duration.
type sample struct {
	data []byte // AVCC
	dts  uint64 // decode time in Timescale ticks
	key  bool
}

// Writer writes one H.264 track as fragmented MP4. It is not safe for
// concurrent use.
type Writer struct {
	w io.Writer
	// width and height are the picture size of the init segment's SPS.
	width, height int
	opts          Options
	maxTicks      uint64
	track         media.Track
	sps, pps      []byte // those in the init segment, once written

	initDone bool
	closed   bool
	seq      uint32
	frag     *mp4.Fragment
	fragDur  uint64
	pending  *sample
	lastDur  uint32
	end      uint64 // decode time just after the last committed sample
	buf      bytes.Buffer
	skipped  int
}

// NewWriter starts a fragmented MP4 of track on w. If track carries SPS and
// PPS the init segment (ftyp+moov) is written at once; otherwise it is
// written with the first key frame, from the parameter sets in band.
func NewWriter(w io.Writer, track media.Track, opts Options) (*Writer, error) {
	if track.Codec != media.CodecH264 {
		return nil, fmt.Errorf("%w (track codec %q)", ErrUnsupportedCodec, track.Codec)
	}
	if opts.MaxFragmentDuration <= 0 {
		opts.MaxFragmentDuration = DefaultMaxFragmentDuration
	}
	wr := &Writer{w: w, opts: opts, track: track, maxTicks: toTicks(opts.MaxFragmentDuration)}
	if len(track.SPS) > 0 && len(track.PPS) > 0 {
		if err := wr.writeInit(track.SPS, track.PPS); err != nil {
			return nil, err
		}
	}
	return wr, nil
}

// Skipped returns how many access units were dropped because they came
// before the first key frame.
func (w *Writer) Skipped() int { return w.skipped }

// WriteAccessUnit adds one Annex-B access unit. Its decode time is its PTS
// (camagent's encoders emit no B-frames); its duration is known, and the
// sample written, when the next access unit arrives or at Flush.
func (w *Writer) WriteAccessUnit(au media.AccessUnit) error {
	if w.closed {
		return ErrClosed
	}
	if au.Codec != media.CodecH264 {
		return fmt.Errorf("%w (access unit codec %q)", ErrUnsupportedCodec, au.Codec)
	}
	nalus, err := h264.SplitAnnexB(au.Data)
	if err != nil {
		return fmt.Errorf("fmp4: %w", err)
	}
	if !w.initDone {
		if !au.Key {
			w.skipped++ // undecodable without the preceding IDR
			return nil
		}
		if err := w.initFromKeyFrame(nalus); err != nil {
			return err
		}
	}
	data, err := w.sampleData(nalus)
	if err != nil {
		return err
	}
	s := &sample{data: data, dts: w.decodeTime(au.PTS), key: au.Key}
	if w.pending != nil {
		if err := w.commit(w.pending, uint32(s.dts-w.pending.dts)); err != nil {
			return err
		}
	}
	w.pending = s
	return nil
}

// initFromKeyFrame writes the init segment from the key frame's in-band
// parameter sets, or the track's.
func (w *Writer) initFromKeyFrame(nalus [][]byte) error {
	sps, pps := h264.FindParameterSets(nalus)
	if sps == nil || pps == nil {
		sps, pps = w.track.SPS, w.track.PPS
	}
	if len(sps) == 0 || len(pps) == 0 {
		return ErrNoParameterSets
	}
	return w.writeInit(sps, pps)
}

// sampleData converts an access unit to an AVCC sample. The track is
// avc3: SPS and PPS stay in band, because encoders such as openh264 give
// every IDR a new parameter-set ID and an avc1 entry holds one fixed set.
// Access unit delimiters mean nothing in MP4 and are left out. An SPS for a
// different picture size cannot continue the track.
func (w *Writer) sampleData(nalus [][]byte) ([]byte, error) {
	kept := nalus[:0:0]
	for _, n := range nalus {
		switch h264.Type(n) {
		case h264.NALUTypeSPS:
			if !bytes.Equal(n, w.sps) {
				width, height, err := h264.ParseSize(n)
				if err != nil {
					return nil, fmt.Errorf("fmp4: %w", err)
				}
				if width != w.width || height != w.height {
					return nil, ErrParameterSetsChanged
				}
			}
			kept = append(kept, n)
		case h264.NALUTypeAUD:
		default:
			kept = append(kept, n)
		}
	}
	if len(kept) == 0 {
		return nil, fmt.Errorf("fmp4: access unit has no picture data")
	}
	return h264.JoinAVCC(kept), nil
}

// decodeTime maps a PTS to ticks, forced strictly after the previous sample
// so that durations stay positive even if timestamps repeat.
func (w *Writer) decodeTime(pts time.Duration) uint64 {
	dts := toTicks(max(pts, 0))
	floor := w.end
	if w.pending != nil {
		floor = w.pending.dts + 1
	}
	return max(dts, floor)
}

// toTicks converts to Timescale ticks, rounding to the nearest so that a
// 30 fps stream gets 3000-tick durations rather than 2999 and 3000 mixed.
func toTicks(d time.Duration) uint64 {
	return uint64((d/time.Microsecond*Timescale + 500_000) / 1_000_000)
}

// commit adds a sample whose duration is now known to the current fragment,
// first writing out that fragment if the sample must start a new one.
func (w *Writer) commit(s *sample, dur uint32) error {
	if w.frag != nil && (s.key || w.fragDur+uint64(dur) > w.maxTicks) {
		if err := w.writeFragment(); err != nil {
			return err
		}
	}
	if w.frag == nil {
		w.seq++
		frag, err := mp4.CreateFragment(w.seq, 1)
		if err != nil {
			return fmt.Errorf("fmp4: %w", err)
		}
		w.frag, w.fragDur = frag, 0
	}
	flags := mp4.NonSyncSampleFlags
	if s.key {
		flags = mp4.SyncSampleFlags
	}
	w.frag.AddFullSample(mp4.FullSample{
		Sample:     mp4.NewSample(flags, dur, uint32(len(s.data)), 0),
		DecodeTime: s.dts,
		Data:       s.data,
	})
	w.fragDur += uint64(dur)
	w.lastDur = dur
	w.end = s.dts + uint64(dur)
	return nil
}

// Flush writes everything received so far as a complete fragment. The
// held-back last sample gets the previous sample's duration (or one frame
// at the track's rate); a later access unit is placed no earlier than where
// that guess ends. When Flush returns nil the fragment has been written to
// the io.Writer and AfterFragment has run.
func (w *Writer) Flush() error {
	if w.closed {
		return ErrClosed
	}
	if w.pending != nil {
		if err := w.commit(w.pending, w.guessDuration()); err != nil {
			return err
		}
		w.pending = nil
	}
	if w.frag == nil {
		return nil
	}
	return w.writeFragment()
}

func (w *Writer) guessDuration() uint32 {
	if w.lastDur > 0 {
		return w.lastDur
	}
	fps := w.track.FPS
	if fps <= 0 {
		fps = 30
	}
	return uint32(Timescale/fps + 0.5)
}

// Close flushes and stops the writer. It does not close the io.Writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	err := w.Flush()
	w.closed = true
	return err
}

func (w *Writer) writeInit(sps, pps []byte) error {
	// mp4ff's SPS parser is not hardened against hostile input; ours is.
	width, height, err := h264.ParseSize(sps)
	if err != nil {
		return fmt.Errorf("fmp4: %w", err)
	}
	w.width, w.height = width, height
	init := mp4.NewMP4Init()
	init.AddChild(mp4.NewFtyp("isom", 0x200, []string{"isom", "iso6", "avc1", "mp41"}))
	moov := mp4.NewMoovBox()
	init.AddChild(moov)
	moov.AddChild(mp4.CreateMvhd())
	moov.AddChild(mp4.NewMvexBox())
	init.AddEmptyTrack(Timescale, "video", "und")
	if err := init.Moov.Trak.SetAVCDescriptor("avc3", [][]byte{sps}, [][]byte{pps}, true); err != nil {
		return fmt.Errorf("fmp4: avc3 sample entry: %w", err)
	}
	w.buf.Reset()
	if err := init.Encode(&w.buf); err != nil {
		return fmt.Errorf("fmp4: encode init segment: %w", err)
	}
	if _, err := w.w.Write(w.buf.Bytes()); err != nil {
		return fmt.Errorf("fmp4: write init segment: %w", err)
	}
	w.sps, w.pps, w.initDone = bytes.Clone(sps), bytes.Clone(pps), true
	return nil
}

// writeFragment encodes the current fragment and writes it with one Write,
// so that a file holds either all of a fragment or a truncated tail.
func (w *Writer) writeFragment() error {
	frag := w.frag
	w.frag = nil
	w.buf.Reset()
	if err := frag.Encode(&w.buf); err != nil {
		return fmt.Errorf("fmp4: encode fragment %d: %w", w.seq, err)
	}
	if _, err := w.w.Write(w.buf.Bytes()); err != nil {
		return fmt.Errorf("fmp4: write fragment %d: %w", w.seq, err)
	}
	if w.opts.AfterFragment != nil {
		if err := w.opts.AfterFragment(); err != nil {
			return fmt.Errorf("fmp4: after fragment %d: %w", w.seq, err)
		}
	}
	return nil
}

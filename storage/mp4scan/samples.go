package mp4scan

import (
	"bytes"
	"fmt"
	"io"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Sample is one media sample of a fragment.
type Sample struct {
	DecodeTime uint64 // in the track's timescale
	Duration   uint32
	Key        bool
	Data       []byte // AVCC (length-prefixed NAL units)
}

// maxFragmentBytes bounds what ReadSamples loads into memory.
const maxFragmentBytes = 64 << 20

// ReadSamples decodes the samples of one fragment found by Scan, using
// mp4ff for the moof (tfhd/tfdt/trun, §8.8.7-8.8.12). mp4ff is not
// hardened against hostile input, so a panic inside it is turned into an
// error: recordings can be damaged in ways its authors did not foresee.
func ReadSamples(r io.ReaderAt, f Fragment) (samples []Sample, err error) {
	n := f.MoofSize + f.MdatSize
	if n <= 0 || n > maxFragmentBytes {
		return nil, fmt.Errorf("mp4scan: fragment at %d has implausible size %d", f.Offset, n)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, f.Offset); err != nil {
		return nil, fmt.Errorf("mp4scan: read fragment at %d: %w", f.Offset, err)
	}
	defer func() {
		if p := recover(); p != nil {
			samples, err = nil, fmt.Errorf("mp4scan: corrupt fragment at %d: %v", f.Offset, p)
		}
	}()
	rd := bytes.NewReader(buf)
	moofBox, err := mp4.DecodeBox(uint64(f.Offset), rd)
	if err != nil {
		return nil, fmt.Errorf("mp4scan: moof at %d: %w", f.Offset, err)
	}
	mdatBox, err := mp4.DecodeBox(uint64(f.Offset+f.MoofSize), rd)
	if err != nil {
		return nil, fmt.Errorf("mp4scan: mdat at %d: %w", f.Offset+f.MoofSize, err)
	}
	moof, ok1 := moofBox.(*mp4.MoofBox)
	mdat, ok2 := mdatBox.(*mp4.MdatBox)
	if !ok1 || !ok2 || moof.Traf == nil || moof.Traf.Tfhd == nil {
		return nil, fmt.Errorf("mp4scan: fragment at %d lacks moof/traf/tfhd or mdat", f.Offset)
	}
	frag := mp4.NewFragment()
	frag.AddChild(moof)
	frag.AddChild(mdat)
	full, err := frag.GetFullSamples(nil)
	if err != nil {
		return nil, fmt.Errorf("mp4scan: samples at %d: %w", f.Offset, err)
	}
	samples = make([]Sample, len(full))
	for i, s := range full {
		samples[i] = Sample{DecodeTime: s.DecodeTime, Duration: s.Dur, Key: s.IsSync(), Data: s.Data}
	}
	return samples, nil
}

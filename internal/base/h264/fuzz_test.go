package h264

import "testing"

func FuzzSplitAnnexB(f *testing.F) {
	for _, au := range loadAccessUnits(f)[:3] {
		f.Add(au)
	}
	f.Add([]byte{0, 0, 1})
	f.Add([]byte{0, 0, 0, 1, 0x65, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		nalus, err := SplitAnnexB(b)
		if err != nil {
			return
		}
		for _, n := range nalus {
			if len(n) == 0 || n[len(n)-1] == 0 {
				t.Fatalf("unit %x is empty or ends in zero", n)
			}
		}
		// Joining and splitting again is stable.
		again, err := SplitAnnexB(JoinAnnexB(nalus))
		if err != nil || len(again) != len(nalus) {
			t.Fatalf("re-split: %d units, err %v; want %d", len(again), err, len(nalus))
		}
		_ = IsKeyFrame(b)
		sps, pps := ParameterSets(b)
		if out, inserted := WithParameterSets(nalus, sps, pps); inserted {
			if s, p := FindParameterSets(out); s == nil || p == nil {
				t.Fatal("inserted parameter sets missing")
			}
		}
	})
}

func FuzzSplitAVCC(f *testing.F) {
	for _, au := range loadAccessUnits(f)[:3] {
		avcc, _ := AnnexBToAVCC(au)
		f.Add(avcc)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		nalus, err := SplitAVCC(b)
		if err != nil {
			return
		}
		if back, err := SplitAVCC(JoinAVCC(nalus)); err != nil || len(back) != len(nalus) {
			t.Fatalf("round trip: %d units, err %v", len(back), err)
		}
		total := 0
		for _, n := range nalus {
			total += 4 + len(n)
		}
		if total > len(b) {
			t.Fatalf("units add up to %d bytes from %d", total, len(b))
		}
	})
}

func FuzzParseSPS(f *testing.F) {
	sps, _ := ParameterSets(loadAccessUnits(f)[0])
	f.Add(sps)
	f.Add([]byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10})
	f.Add([]byte{0x67})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ParseSPS(b)
		if err != nil {
			return
		}
		if info.Width <= 0 || info.Height <= 0 || info.Width > maxDimension || info.Height > maxDimension {
			t.Fatalf("accepted size %dx%d", info.Width, info.Height)
		}
	})
}

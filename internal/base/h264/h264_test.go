package h264_test

import (
	"bytes"
	"testing"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media/mediatest"
)

func TestSplitAnnexB(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    [][]byte
		wantErr bool
	}{
		{"four-byte start codes", []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3}, [][]byte{{0x67, 1, 2}, {0x68, 3}}, false},
		{"three-byte start codes", []byte{0, 0, 1, 0x65, 9, 0, 0, 1, 0x41, 8}, [][]byte{{0x65, 9}, {0x41, 8}}, false},
		{"trailing zero bytes trimmed", []byte{0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 0, 0, 1, 0x65, 7, 0, 0}, [][]byte{{0x09, 0xf0}, {0x65, 7}}, false},
		{"empty units dropped", []byte{0, 0, 0, 1, 0, 0, 0, 1, 0x65, 1}, [][]byte{{0x65, 1}}, false},
		{"no start code", []byte{0x65, 1, 2, 3}, nil, true},
		{"third byte 0x01 is no start code", []byte{5, 5, 1, 0x65, 1}, nil, true},
		{"empty", nil, nil, true},
		{"only start codes", []byte{0, 0, 0, 1, 0, 0, 1}, nil, true},
		{"only zeros", []byte{0, 0, 0, 1, 0, 0}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h264.SplitAnnexB(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d NAL units %x, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("unit %d = %x, want %x", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestAnnexBAVCCRoundTrip(t *testing.T) {
	for i, au := range mediatest.Stream100x60.Units() {
		avcc, err := h264.AnnexBToAVCC(au)
		if err != nil {
			t.Fatalf("AU %d: %v", i, err)
		}
		back, err := h264.AVCCToAnnexB(avcc)
		if err != nil {
			t.Fatalf("AU %d: %v", i, err)
		}
		if !bytes.Equal(back, au) {
			t.Fatalf("AU %d: round trip changed the data", i)
		}
	}
}

func TestSplitAVCC(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    int
		wantErr bool
	}{
		{"two units", []byte{0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41}, 2, false},
		{"zero-length unit skipped", []byte{0, 0, 0, 0, 0, 0, 0, 1, 0x41}, 1, false},
		{"length past end", []byte{0, 0, 0, 9, 0x65}, 0, true},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0x65}, 0, true},
		{"short header", []byte{0, 0, 1}, 0, true},
		{"empty", nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h264.SplitAVCC(tt.in)
			if (err != nil) != tt.wantErr || len(got) != tt.want {
				t.Fatalf("got %d units, err %v; want %d units, wantErr %v", len(got), err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestKeyFramesAndParameterSets(t *testing.T) {
	aus := mediatest.Stream100x60.Units()
	if len(aus) != 12 {
		t.Fatalf("got %d access units, want 12", len(aus))
	}
	for i, au := range aus {
		wantKey := i%6 == 0
		if got := h264.IsKeyFrame(au); got != wantKey {
			t.Errorf("AU %d: IsKeyFrame = %v, want %v", i, got, wantKey)
		}
	}
	sps, pps := h264.ParameterSets(aus[0])
	if h264.Type(sps) != h264.NALUTypeSPS || h264.Type(pps) != h264.NALUTypePPS {
		t.Fatalf("first AU: sps %x pps %x", sps, pps)
	}
	if s, p := h264.ParameterSets(aus[6]); !bytes.Equal(s, sps) || !bytes.Equal(p, pps) {
		t.Fatalf("second IDR lacks the parameter sets")
	}
	info, err := h264.ParseSPS(sps)
	if err != nil {
		t.Fatal(err)
	}
	if info.Width != 100 || info.Height != 60 {
		t.Errorf("size = %dx%d, want 100x60 (cropped from 112x64)", info.Width, info.Height)
	}
	if info.Profile != 66 {
		t.Errorf("profile = %d, want 66 (baseline)", info.Profile)
	}
}

func TestWithParameterSets(t *testing.T) {
	aus := mediatest.Stream100x60.Units()
	sps, pps := h264.ParameterSets(aus[0])
	tests := []struct {
		name      string
		au        []byte
		wantAdded bool
	}{
		{"IDR with headers unchanged", aus[0], false},
		{"IDR without headers gets them", stripParameterSets(t, aus[6]), true},
		{"non-IDR unchanged", aus[1], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nalus, err := h264.SplitAnnexB(tt.au)
			if err != nil {
				t.Fatal(err)
			}
			got, added := h264.WithParameterSets(nalus, sps, pps)
			if added != tt.wantAdded || (len(got) != len(nalus)) != added {
				t.Fatalf("added = %v, want %v", added, tt.wantAdded)
			}
			if !tt.wantAdded {
				return
			}
			if h264.Type(got[0]) != h264.NALUTypeAUD || h264.Type(got[1]) != h264.NALUTypeSPS || h264.Type(got[2]) != h264.NALUTypePPS {
				t.Errorf("order = %v %v %v, want AUD SPS PPS", h264.Type(got[0]), h264.Type(got[1]), h264.Type(got[2]))
			}
		})
	}
}

func TestParseSPSRejects(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not an SPS", []byte{0x68, 0xce, 0x38, 0x80}},
		{"truncated", []byte{0x67, 0x42}},
		// pic_width_in_mbs_minus1 = 2^20: far beyond maxDimension.
		{"huge width", []byte{0x67, 0x42, 0xc0, 0x1e, 0xf4, 0x00, 0x00, 0x04, 0x00, 0x01, 0x10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := h264.ParseSize(tt.in); err == nil {
				t.Fatal("ParseSize accepted bad input")
			}
		})
	}
}

func TestTypeAndVCL(t *testing.T) {
	tests := []struct {
		nalu []byte
		typ  h264.NALUType
		vcl  bool
	}{
		{nil, 0, false},
		{[]byte{0x65}, h264.NALUTypeIDR, true},
		{[]byte{0x41}, h264.NALUTypeNonIDR, true},
		{[]byte{0x67}, h264.NALUTypeSPS, false},
		{[]byte{0x06}, h264.NALUTypeSEI, false},
	}
	for _, tt := range tests {
		if h264.Type(tt.nalu) != tt.typ || h264.IsVCL(tt.nalu) != tt.vcl {
			t.Errorf("%x: type %v vcl %v, want %v %v", tt.nalu, h264.Type(tt.nalu), h264.IsVCL(tt.nalu), tt.typ, tt.vcl)
		}
	}
}

func BenchmarkSplitAnnexB(b *testing.B) {
	au := mediatest.Stream100x60.Units()[0]
	b.SetBytes(int64(len(au)))
	for b.Loop() {
		if _, err := h264.SplitAnnexB(au); err != nil {
			b.Fatal(err)
		}
	}
}

// stripParameterSets removes SPS and PPS from an access unit, as cameras
// that send headers only once do.
func stripParameterSets(t testing.TB, au []byte) []byte {
	t.Helper()
	nalus, err := h264.SplitAnnexB(au)
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	for _, n := range nalus {
		if h264.Type(n) != h264.NALUTypeSPS && h264.Type(n) != h264.NALUTypePPS {
			kept = append(kept, n)
		}
	}
	return h264.JoinAnnexB(kept)
}

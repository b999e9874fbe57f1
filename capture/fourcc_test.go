package capture

import (
	"testing"

	"github.com/camagent/camagent/internal/base/media"
)

func TestFourCC(t *testing.T) {
	tests := []struct {
		code  FourCC
		value uint32 // as in videodev2.h
		str   string
		pixel media.PixelFormat
		known bool
	}{
		{FourCCMJPG, 0x47504a4d, "MJPG", media.PixMJPEG, true},
		{FourCCYUYV, 0x56595559, "YUYV", media.PixYUYV, true},
		{FourCCNV12, 0x3231564e, "NV12", media.PixNV12, true},
		{FourCCYU12, 0x32315559, "YU12", media.PixI420, true},
		{FourCCH264, 0x34363248, "H264", media.PixH264, true},
		{MakeFourCC('R', 'G', 'B', '3'), 0x33424752, "RGB3", "", false},
		{FourCC(0x00000001), 1, "0x00000001", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.str, func(t *testing.T) {
			if uint32(tt.code) != tt.value {
				t.Errorf("code = %#x, want %#x", uint32(tt.code), tt.value)
			}
			if s := tt.code.String(); s != tt.str {
				t.Errorf("String = %q, want %q", s, tt.str)
			}
			p, ok := tt.code.PixelFormat()
			if p != tt.pixel || ok != tt.known {
				t.Errorf("PixelFormat = %q, %v; want %q, %v", p, ok, tt.pixel, tt.known)
			}
			if !tt.known {
				return
			}
			back, ok := FourCCOf(p)
			if !ok || back != tt.code {
				t.Errorf("FourCCOf(%q) = %v, %v; want %v", p, back, ok, tt.code)
			}
			// media pixel names are the fourcc strings themselves.
			if string(p) != tt.str {
				t.Errorf("media name %q differs from fourcc %q", p, tt.str)
			}
		})
	}
	if _, ok := FourCCOf("RGB3"); ok {
		t.Error("FourCCOf(RGB3) succeeded")
	}
}

func TestBestFormat(t *testing.T) {
	tests := []struct {
		offered []media.PixelFormat
		want    media.PixelFormat
	}{
		{[]media.PixelFormat{media.PixYUYV, media.PixMJPEG, media.PixH264}, media.PixH264},
		{[]media.PixelFormat{media.PixYUYV, media.PixMJPEG}, media.PixMJPEG},
		{[]media.PixelFormat{media.PixYUYV, media.PixNV12}, media.PixNV12},
		{[]media.PixelFormat{media.PixI420, media.PixYUYV}, media.PixYUYV},
		{[]media.PixelFormat{media.PixI420}, media.PixI420},
		{nil, ""},
	}
	for _, tt := range tests {
		got, ok := bestFormat(tt.offered)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("bestFormat(%v) = %q, %v; want %q", tt.offered, got, ok, tt.want)
		}
	}
}

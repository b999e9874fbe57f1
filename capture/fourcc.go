package capture

import (
	"fmt"

	"github.com/camagent/camagent/internal/base/media"
)

// FourCC is a V4L2 pixel format code: four ASCII characters packed little
// endian, as in the kernel's v4l2_fourcc() macro.
type FourCC uint32

// MakeFourCC packs four characters the way v4l2_fourcc() does.
func MakeFourCC(a, b, c, d byte) FourCC {
	return FourCC(uint32(a) | uint32(b)<<8 | uint32(c)<<16 | uint32(d)<<24)
}

// The pixel formats camagent knows how to use (videodev2.h).
var (
	FourCCMJPG = MakeFourCC('M', 'J', 'P', 'G')
	FourCCYUYV = MakeFourCC('Y', 'U', 'Y', 'V')
	FourCCNV12 = MakeFourCC('N', 'V', '1', '2')
	FourCCYU12 = MakeFourCC('Y', 'U', '1', '2')
	FourCCH264 = MakeFourCC('H', '2', '6', '4')
)

// String renders the code as its four characters, or as hex when they are
// not printable (some vendor formats use binary codes).
func (f FourCC) String() string {
	b := [4]byte{byte(f), byte(f >> 8), byte(f >> 16), byte(f >> 24)}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%08x", uint32(f))
		}
	}
	return string(b[:])
}

// knownFormats maps the codes camagent can use to their media names.
// media.PixelFormat values are the fourcc strings themselves, but only these
// have code paths behind them.
var knownFormats = map[FourCC]media.PixelFormat{
	FourCCMJPG: media.PixMJPEG,
	FourCCYUYV: media.PixYUYV,
	FourCCNV12: media.PixNV12,
	FourCCYU12: media.PixI420,
	FourCCH264: media.PixH264,
}

// PixelFormat returns the media name of f and whether camagent supports it.
func (f FourCC) PixelFormat() (media.PixelFormat, bool) {
	p, ok := knownFormats[f]
	return p, ok
}

// FourCCOf returns the V4L2 code of a supported pixel format.
func FourCCOf(p media.PixelFormat) (FourCC, bool) {
	for code, name := range knownFormats {
		if name == p {
			return code, true
		}
	}
	return 0, false
}

// preference lists the supported formats best first when the caller leaves
// the choice to us: camera-encoded H.264 needs no encoder at all, MJPEG is
// cheap to pass through, and of the raw formats NV12 is what hardware
// encoders take natively.
var preference = []media.PixelFormat{media.PixH264, media.PixMJPEG, media.PixNV12, media.PixYUYV, media.PixI420}

// bestFormat picks the most preferred of the offered formats.
func bestFormat(offered []media.PixelFormat) (media.PixelFormat, bool) {
	for _, want := range preference {
		for _, have := range offered {
			if have == want {
				return want, true
			}
		}
	}
	return "", false
}

//go:build !cgo

package encode

import (
	"errors"
	"testing"

	"github.com/camagent/camagent/internal/base/media"
)

func TestNoSoftwareH264WithoutCgo(t *testing.T) {
	if SoftwareH264Available() {
		t.Fatal("SoftwareH264Available in a !cgo build")
	}
	for _, in := range []media.PixelFormat{media.PixI420, media.PixNV12, media.PixYUYV, media.PixMJPEG} {
		_, err := New(Config{Codec: media.CodecH264}, in, 64, 48)
		if !errors.Is(err, ErrNoSoftwareH264) {
			t.Errorf("%s: err = %v, want ErrNoSoftwareH264", in, err)
		}
	}
	// Passthrough needs no encoder.
	enc, err := New(Config{Codec: media.CodecH264}, media.PixH264, 64, 48)
	if err != nil {
		t.Fatal(err)
	}
	enc.Close()
}

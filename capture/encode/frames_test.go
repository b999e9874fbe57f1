package encode

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// frameInterval is the capture period of the synthetic frames (30 fps).
const frameInterval = time.Second / 30

// gradientI420 draws frame n of a moving diagonal gradient as a 4:2:0
// picture: content that changes every frame but compresses like a scene.
func gradientI420(w, h, n int) *image.YCbCr {
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Y[y*img.YStride+x] = uint8(x + y + 4*n)
		}
	}
	for y := 0; y < (h+1)/2; y++ {
		for x := 0; x < (w+1)/2; x++ {
			img.Cb[y*img.CStride+x] = uint8(64 + x/2 + n)
			img.Cr[y*img.CStride+x] = uint8(192 - y/2 - n)
		}
	}
	return img
}

// syntheticFrame returns frame n of the gradient in the given format.
func syntheticFrame(t testing.TB, format media.PixelFormat, w, h, n int) media.RawFrame {
	t.Helper()
	img := gradientI420(w, h, n)
	f := media.RawFrame{
		Format: format, Width: w, Height: h, Seq: uint64(n),
		Timestamp: 5*time.Second + time.Duration(n)*frameInterval,
		Captured:  time.Unix(1700000000, 0).Add(time.Duration(n) * frameInterval),
	}
	switch format {
	case media.PixI420:
		f.Data = packI420(img)
	case media.PixNV12:
		f.Data = packNV12(img)
	case media.PixYUYV:
		f.Data = packYUYV(img)
	case media.PixMJPEG:
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		f.Data = buf.Bytes()
	default:
		t.Fatalf("no synthetic frames in %s", format)
	}
	return f
}

func packI420(img *image.YCbCr) []byte {
	out := append([]byte{}, img.Y...)
	out = append(out, img.Cb...)
	return append(out, img.Cr...)
}

func packNV12(img *image.YCbCr) []byte {
	out := append([]byte{}, img.Y...)
	for i := range img.Cb {
		out = append(out, img.Cb[i], img.Cr[i])
	}
	return out
}

// packYUYV repeats each 4:2:0 chroma sample on both rows it covers, so that
// converting back to 4:2:0 must reproduce img exactly.
func packYUYV(img *image.YCbCr) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	out := make([]byte, 0, 2*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x += 2 {
			c := img.COffset(x, y)
			out = append(out, img.Y[img.YOffset(x, y)], img.Cb[c], img.Y[img.YOffset(x+1, y)], img.Cr[c])
		}
	}
	return out
}

package motion

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/camagent/camagent/internal/base/media"
)

// JPEG encodes a raw frame as a JPEG still (MJPEG frames are returned as
// they are).
func JPEG(f media.RawFrame, quality int) ([]byte, error) {
	if f.Format == media.PixMJPEG {
		return bytes.Clone(f.Data), nil
	}
	img, err := toYCbCr(f)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, fmt.Errorf("motion: encode JPEG: %w", err)
	}
	return buf.Bytes(), nil
}

// toYCbCr wraps or converts a raw frame into an image.YCbCr (4:2:0).
func toYCbCr(f media.RawFrame) (*image.YCbCr, error) {
	p, err := luma(f)
	if err != nil {
		return nil, err
	}
	w, h := f.Width, f.Height
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	for y := 0; y < h; y++ {
		row := p.data[y*p.stride:]
		for x := 0; x < w; x++ {
			img.Y[y*img.YStride+x] = row[x*p.step]
		}
	}
	cw, ch := (w+1)/2, (h+1)/2
	switch f.Format {
	case media.PixI420:
		ySize := p.stride * h
		cStride := p.stride / 2
		need := ySize + 2*cStride*ch
		if len(f.Data) < need {
			return nil, fmt.Errorf("motion: YU12 frame of %d bytes, need %d", len(f.Data), need)
		}
		for y := 0; y < ch; y++ {
			copy(img.Cb[y*img.CStride:y*img.CStride+cw], f.Data[ySize+y*cStride:])
			copy(img.Cr[y*img.CStride:y*img.CStride+cw], f.Data[ySize+cStride*ch+y*cStride:])
		}
	case media.PixNV12:
		ySize := p.stride * h
		if len(f.Data) < ySize+p.stride*ch {
			return nil, fmt.Errorf("motion: NV12 frame of %d bytes is too short", len(f.Data))
		}
		for y := 0; y < ch; y++ {
			row := f.Data[ySize+y*p.stride:]
			for x := 0; x < cw; x++ {
				img.Cb[y*img.CStride+x], img.Cr[y*img.CStride+x] = row[2*x], row[2*x+1]
			}
		}
	case media.PixYUYV:
		for y := 0; y < ch; y++ {
			row := p.data[2*y*p.stride:]
			for x := 0; x < cw && 4*x+3 < len(row); x++ {
				img.Cb[y*img.CStride+x], img.Cr[y*img.CStride+x] = row[4*x+1], row[4*x+3]
			}
		}
	}
	return img, nil
}

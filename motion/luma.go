// Package motion detects motion in raw camera frames, in pure Go, on a
// downscaled luma grid: frames are reduced to block averages, compared
// with a slowly adapting background, and motion is a large enough share of
// changed blocks inside the zones and outside the masks. Events are kept
// in a crash-safe log with a JPEG snapshot each.
package motion

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/camagent/camagent/internal/base/media"
)

// lumaPlane is a view of a frame's Y samples: sample (x, y) is
// data[y*stride+x*step].
type lumaPlane struct {
	data          []byte
	width, height int
	stride, step  int
}

// luma finds the Y samples of a raw frame. MJPEG frames are decoded.
func luma(f media.RawFrame) (lumaPlane, error) {
	if f.Width <= 0 || f.Height <= 0 {
		return lumaPlane{}, fmt.Errorf("motion: frame size %dx%d", f.Width, f.Height)
	}
	p := lumaPlane{data: f.Data, width: f.Width, height: f.Height, stride: f.Stride, step: 1}
	switch f.Format {
	case media.PixI420, media.PixNV12:
		if p.stride == 0 {
			p.stride = f.Width
		}
	case media.PixYUYV:
		p.step = 2 // Y0 U Y1 V
		if p.stride == 0 {
			p.stride = 2 * f.Width
		}
	case media.PixMJPEG:
		img, err := jpeg.Decode(bytes.NewReader(f.Data))
		if err != nil {
			return lumaPlane{}, fmt.Errorf("motion: %w", err)
		}
		ycc, ok := img.(*image.YCbCr)
		if !ok {
			g, ok := img.(*image.Gray)
			if !ok {
				return lumaPlane{}, fmt.Errorf("motion: JPEG decodes to %T, not YCbCr", img)
			}
			return lumaPlane{data: g.Pix, width: g.Rect.Dx(), height: g.Rect.Dy(), stride: g.Stride, step: 1}, nil
		}
		return lumaPlane{data: ycc.Y, width: ycc.Rect.Dx(), height: ycc.Rect.Dy(), stride: ycc.YStride, step: 1}, nil
	default:
		return lumaPlane{}, fmt.Errorf("motion: cannot analyse %s frames", f.Format)
	}
	if p.stride < p.width*p.step || len(p.data) < (p.height-1)*p.stride+p.width*p.step {
		return lumaPlane{}, fmt.Errorf("motion: %s frame of %d bytes is too short for %dx%d", f.Format, len(f.Data), f.Width, f.Height)
	}
	return p, nil
}

// downscale averages the plane into a gw x gh grid of cells (into out).
// Each cell averages every second sample of every second row: at 640x360
// that is 57,600 reads, plenty to average out sensor noise.
func (p lumaPlane) downscale(gw, gh int, out []uint16) {
	for cy := 0; cy < gh; cy++ {
		y0, y1 := cy*p.height/gh, (cy+1)*p.height/gh
		for cx := 0; cx < gw; cx++ {
			x0, x1 := cx*p.width/gw, (cx+1)*p.width/gw
			var sum, n uint32
			for y := y0; y < y1; y += 2 {
				row := p.data[y*p.stride:]
				for x := x0; x < x1; x += 2 {
					sum += uint32(row[x*p.step])
					n++
				}
			}
			if n > 0 {
				out[cy*gw+cx] = uint16(sum * 16 / n) // 12.4 fixed point
			}
		}
	}
}

package encode

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/camagent/camagent/internal/base/media"
)

// i420Converter turns captured frames into 4:2:0 *image.YCbCr pictures of a
// fixed output size, the input both openh264 and image/jpeg want. Buffers are
// allocated once and reused, so the returned picture is only valid until the
// next call.
type i420Converter struct {
	width, height int          // output size
	out           *image.YCbCr // output when conversion or scaling is needed
	src           *image.YCbCr // source-size staging for NV12/YUYV when scaling
}

func newI420Converter(width, height int) *i420Converter {
	return &i420Converter{width: width, height: height}
}

// convert returns f as an I420 picture of the output size. For YU12 input of
// the output size it aliases f.Data and copies nothing.
func (c *i420Converter) convert(f media.RawFrame) (*image.YCbCr, error) {
	src, err := c.sourcePicture(f)
	if err != nil {
		return nil, err
	}
	b := src.Bounds()
	if src.SubsampleRatio == image.YCbCrSubsampleRatio420 && b.Dx() == c.width && b.Dy() == c.height {
		return src, nil
	}
	c.out = reuseI420(c.out, c.width, c.height)
	resampleNearest(c.out, src)
	return c.out, nil
}

// sourcePicture views or converts f as a YCbCr picture of its own size.
func (c *i420Converter) sourcePicture(f media.RawFrame) (*image.YCbCr, error) {
	if f.Width <= 0 || f.Height <= 0 {
		return nil, fmt.Errorf("frame size %dx%d", f.Width, f.Height)
	}
	switch f.Format {
	case media.PixI420:
		return viewI420(f)
	case media.PixNV12:
		dst := c.stage(f.Width, f.Height)
		return dst, nv12ToI420(dst, f)
	case media.PixYUYV:
		dst := c.stage(f.Width, f.Height)
		return dst, yuyvToI420(dst, f)
	case media.PixMJPEG:
		return decodeJPEG(f)
	default:
		return nil, fmt.Errorf("cannot convert pixel format %q", f.Format)
	}
}

// stage returns the buffer a converted source frame goes to: the output
// buffer itself when no scaling follows, otherwise a source-size buffer.
func (c *i420Converter) stage(w, h int) *image.YCbCr {
	if w == c.width && h == c.height {
		c.out = reuseI420(c.out, w, h)
		return c.out
	}
	c.src = reuseI420(c.src, w, h)
	return c.src
}

// reuseI420 returns img if it already is a w x h 4:2:0 picture, otherwise a
// new one.
func reuseI420(img *image.YCbCr, w, h int) *image.YCbCr {
	if img != nil && img.Rect.Dx() == w && img.Rect.Dy() == h {
		return img
	}
	return image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
}

// stride returns the row length of the first plane given the packed width.
func stride(f media.RawFrame, packed int) (int, error) {
	if f.Stride == 0 {
		return packed, nil
	}
	if f.Stride < packed {
		return 0, fmt.Errorf("stride %d shorter than row of %d bytes", f.Stride, packed)
	}
	return f.Stride, nil
}

// viewI420 wraps planar YU12 data without copying. V4L2 gives the chroma
// planes half the luma stride.
func viewI420(f media.RawFrame) (*image.YCbCr, error) {
	ys, err := stride(f, f.Width)
	if err != nil {
		return nil, err
	}
	cs := (ys + 1) / 2
	ch := (f.Height + 1) / 2
	ySize, cSize := ys*f.Height, cs*ch
	if need := ySize + 2*cSize; len(f.Data) < need {
		return nil, fmt.Errorf("YU12 %dx%d: %d bytes, need %d", f.Width, f.Height, len(f.Data), need)
	}
	return &image.YCbCr{
		Y:              f.Data[:ySize:ySize],
		Cb:             f.Data[ySize : ySize+cSize : ySize+cSize],
		Cr:             f.Data[ySize+cSize : ySize+2*cSize : ySize+2*cSize],
		YStride:        ys,
		CStride:        cs,
		SubsampleRatio: image.YCbCrSubsampleRatio420,
		Rect:           image.Rect(0, 0, f.Width, f.Height),
	}, nil
}

// nv12ToI420 de-interleaves the CbCr plane of NV12 into dst (same size).
func nv12ToI420(dst *image.YCbCr, f media.RawFrame) error {
	ys, err := stride(f, f.Width)
	if err != nil {
		return err
	}
	cw, ch := (f.Width+1)/2, (f.Height+1)/2
	if need := ys*f.Height + ys*(ch-1) + 2*cw; len(f.Data) < need {
		return fmt.Errorf("NV12 %dx%d: %d bytes, need %d", f.Width, f.Height, len(f.Data), need)
	}
	for y := 0; y < f.Height; y++ {
		copy(dst.Y[y*dst.YStride:y*dst.YStride+f.Width], f.Data[y*ys:])
	}
	uv := f.Data[ys*f.Height:]
	for y := 0; y < ch; y++ {
		row := uv[y*ys : y*ys+2*cw]
		cb := dst.Cb[y*dst.CStride : y*dst.CStride+cw]
		cr := dst.Cr[y*dst.CStride : y*dst.CStride+cw]
		for x := range cb {
			cb[x], cr[x] = row[2*x], row[2*x+1]
		}
	}
	return nil
}

// yuyvToI420 converts packed 4:2:2 (Y0 Cb Y1 Cr) into dst (same size),
// averaging the chroma of each pair of rows.
func yuyvToI420(dst *image.YCbCr, f media.RawFrame) error {
	if f.Width%2 != 0 {
		return fmt.Errorf("YUYV width %d is odd", f.Width)
	}
	s, err := stride(f, 2*f.Width)
	if err != nil {
		return err
	}
	if need := s*(f.Height-1) + 2*f.Width; len(f.Data) < need {
		return fmt.Errorf("YUYV %dx%d: %d bytes, need %d", f.Width, f.Height, len(f.Data), need)
	}
	cw := f.Width / 2
	for y := 0; y < f.Height; y += 2 {
		top := f.Data[y*s : y*s+2*f.Width]
		bottom := top
		if y+1 < f.Height {
			bottom = f.Data[(y+1)*s : (y+1)*s+2*f.Width]
		}
		yTop := dst.Y[y*dst.YStride : y*dst.YStride+f.Width]
		cb := dst.Cb[(y/2)*dst.CStride : (y/2)*dst.CStride+cw]
		cr := dst.Cr[(y/2)*dst.CStride : (y/2)*dst.CStride+cw]
		for x := 0; x < cw; x++ {
			t, b := top[4*x:4*x+4], bottom[4*x:4*x+4]
			yTop[2*x], yTop[2*x+1] = t[0], t[2]
			cb[x] = uint8((uint16(t[1]) + uint16(b[1]) + 1) / 2)
			cr[x] = uint8((uint16(t[3]) + uint16(b[3]) + 1) / 2)
		}
		if y+1 < f.Height {
			yBottom := dst.Y[(y+1)*dst.YStride : (y+1)*dst.YStride+f.Width]
			for x := 0; x < cw; x++ {
				yBottom[2*x], yBottom[2*x+1] = bottom[4*x], bottom[4*x+2]
			}
		}
	}
	return nil
}

// decodeJPEG decodes one MJPEG frame into YCbCr. Grayscale JPEGs get
// neutral chroma. The header is checked first: a corrupt frame claiming
// 65535x65535 pixels must not make us allocate gigabytes.
func decodeJPEG(f media.RawFrame) (*image.YCbCr, error) {
	hdr, err := jpeg.DecodeConfig(bytes.NewReader(f.Data))
	if err != nil {
		return nil, fmt.Errorf("decode JPEG header: %w", err)
	}
	if hdr.Width != f.Width || hdr.Height != f.Height {
		return nil, fmt.Errorf("JPEG is %dx%d, frame says %dx%d", hdr.Width, hdr.Height, f.Width, f.Height)
	}
	img, err := jpeg.Decode(bytes.NewReader(f.Data))
	if err != nil {
		return nil, fmt.Errorf("decode JPEG: %w", err)
	}
	switch m := img.(type) {
	case *image.YCbCr:
		return m, nil
	case *image.Gray:
		return grayToI420(m), nil
	default:
		// CMYK JPEGs: never from a camera.
		return nil, fmt.Errorf("decode JPEG: unsupported colour model %T", img)
	}
}

func grayToI420(g *image.Gray) *image.YCbCr {
	b := g.Bounds()
	out := image.NewYCbCr(image.Rect(0, 0, b.Dx(), b.Dy()), image.YCbCrSubsampleRatio420)
	for y := 0; y < b.Dy(); y++ {
		copy(out.Y[y*out.YStride:], g.Pix[y*g.Stride:y*g.Stride+b.Dx()])
	}
	for i := range out.Cb {
		out.Cb[i], out.Cr[i] = 128, 128
	}
	return out
}

// resampleNearest fills the 4:2:0 picture dst from src, of any size and
// subsampling, by nearest-neighbour sampling. It is the slow path, taken
// only when scaling or when a JPEG is not 4:2:0.
func resampleNearest(dst, src *image.YCbCr) {
	sb, db := src.Bounds(), dst.Bounds()
	sw, sh, dw, dh := sb.Dx(), sb.Dy(), db.Dx(), db.Dy()
	for y := 0; y < dh; y++ {
		sy := sb.Min.Y + y*sh/dh
		row := dst.Y[y*dst.YStride : y*dst.YStride+dw]
		for x := range row {
			row[x] = src.Y[src.YOffset(sb.Min.X+x*sw/dw, sy)]
		}
	}
	cw, ch := (dw+1)/2, (dh+1)/2
	for cy := 0; cy < ch; cy++ {
		sy := sb.Min.Y + min(2*cy*sh/dh, sh-1)
		cb := dst.Cb[cy*dst.CStride : cy*dst.CStride+cw]
		cr := dst.Cr[cy*dst.CStride : cy*dst.CStride+cw]
		for cx := range cb {
			i := src.COffset(sb.Min.X+min(2*cx*sw/dw, sw-1), sy)
			cb[cx], cr[cx] = src.Cb[i], src.Cr[i]
		}
	}
}

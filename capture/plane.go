package capture

// plane is one 8-bit image plane.
type plane struct {
	pix    []byte
	w, h   int
	stride int
}

func newPlane(w, h int) plane {
	return plane{pix: make([]byte, w*h), w: w, h: h, stride: w}
}

// clip limits a rectangle to the plane; empty results have x0 >= x1 or
// y0 >= y1.
func (p plane) clip(x0, y0, x1, y1 int) (int, int, int, int) {
	return max(x0, 0), max(y0, 0), min(x1, p.w), min(y1, p.h)
}

// fill sets the rectangle [x0,x1) x [y0,y1) to v.
func (p plane) fill(x0, y0, x1, y1 int, v byte) {
	x0, y0, x1, y1 = p.clip(x0, y0, x1, y1)
	if x0 >= x1 || y0 >= y1 {
		return
	}
	first := p.pix[y0*p.stride+x0 : y0*p.stride+x1]
	// Fill the first row by doubling copies (memmove is much faster than
	// a byte loop for long rows), then copy it down.
	first[0] = v
	for n := 1; n < len(first); n *= 2 {
		copy(first[n:], first[:n])
	}
	for y := y0 + 1; y < y1; y++ {
		copy(p.pix[y*p.stride+x0:y*p.stride+x1], first)
	}
}

// copyRect copies the rectangle from src, a plane of the same size.
func (p plane) copyRect(src plane, x0, y0, x1, y1 int) {
	x0, y0, x1, y1 = p.clip(x0, y0, x1, y1)
	if x0 >= x1 || y0 >= y1 {
		return
	}
	for y := y0; y < y1; y++ {
		copy(p.pix[y*p.stride+x0:y*p.stride+x1], src.pix[y*src.stride+x0:y*src.stride+x1])
	}
}

// yuv420 is a planar 4:2:0 picture; chroma planes are half size, rounded
// up. The planes are consecutive in buf, which is therefore the picture in
// YU12 layout.
type yuv420 struct {
	y, u, v plane
	buf     []byte
}

func newYUV420(w, h int) yuv420 {
	cw, ch := (w+1)/2, (h+1)/2
	ySize, cSize := w*h, cw*ch
	buf := make([]byte, ySize+2*cSize)
	return yuv420{
		y:   plane{pix: buf[:ySize], w: w, h: h, stride: w},
		u:   plane{pix: buf[ySize : ySize+cSize], w: cw, h: ch, stride: cw},
		v:   plane{pix: buf[ySize+cSize:], w: cw, h: ch, stride: cw},
		buf: buf,
	}
}

// fill paints a rectangle given in luma coordinates in one colour.
func (f yuv420) fill(r rect, c ycbcr) {
	f.y.fill(r.x0, r.y0, r.x1, r.y1, c.y)
	cx0, cy0, cx1, cy1 := r.chroma()
	f.u.fill(cx0, cy0, cx1, cy1, c.cb)
	f.v.fill(cx0, cy0, cx1, cy1, c.cr)
}

// copyRect restores a rectangle, in luma coordinates, from src.
func (f yuv420) copyRect(src yuv420, r rect) {
	f.y.copyRect(src.y, r.x0, r.y0, r.x1, r.y1)
	cx0, cy0, cx1, cy1 := r.chroma()
	f.u.copyRect(src.u, cx0, cy0, cx1, cy1)
	f.v.copyRect(src.v, cx0, cy0, cx1, cy1)
}

// rect is [x0,x1) x [y0,y1) in luma pixels.
type rect struct{ x0, y0, x1, y1 int }

// chroma returns the chroma samples covering r.
func (r rect) chroma() (int, int, int, int) {
	return r.x0 / 2, r.y0 / 2, (r.x1 + 1) / 2, (r.y1 + 1) / 2
}

// ycbcr is a BT.601 limited-range colour.
type ycbcr struct{ y, cb, cr byte }

package motion

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/camagent/camagent/internal/base/media"
)

// Rect is an area of the frame in fractions of its width and height.
type Rect struct{ X, Y, W, H float64 }

// ParseRect reads "x,y,w,h" (fractions between 0 and 1), the form of the
// motion.zones and motion.masks keys.
func ParseRect(s string) (Rect, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return Rect{}, fmt.Errorf("motion: area %q is not x,y,w,h", s)
	}
	var v [4]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return Rect{}, fmt.Errorf("motion: area %q: %q is not a fraction between 0 and 1", s, p)
		}
		v[i] = f
	}
	r := Rect{v[0], v[1], v[2], v[3]}
	if r.W <= 0 || r.H <= 0 || r.X+r.W > 1.0001 || r.Y+r.H > 1.0001 {
		return Rect{}, fmt.Errorf("motion: area %q is empty or leaves the frame", s)
	}
	return r, nil
}

// contains reports whether the centre of grid cell (cx, cy) is inside.
func (r Rect) contains(cx, cy, gw, gh int) bool {
	x, y := (float64(cx)+0.5)/float64(gw), (float64(cy)+0.5)/float64(gh)
	return x >= r.X && x < r.X+r.W && y >= r.Y && y < r.Y+r.H
}

// DetectorConfig tunes a Detector.
type DetectorConfig struct {
	// Sensitivity from 0 (only large, strong changes) to 1 (slight ones).
	Sensitivity float64
	// Zones are watched (none: the whole frame); Masks are never watched.
	Zones, Masks []Rect
	// GridWidth is the number of cells across (default 64); the grid keeps
	// the frame's aspect ratio.
	GridWidth int
}

// Detector compares each frame with a running background.
type Detector struct {
	cfg      DetectorConfig
	gw, gh   int
	srcW     int
	srcH     int
	watched  []bool
	nWatched int
	bg, cur  []uint16 // 12.4 fixed-point luma per cell
	primed   bool
	// cellThreshold is the luma change (12.4) that marks a cell changed;
	// areaThreshold the share of watched cells that makes motion.
	cellThreshold int
	areaThreshold float64
}

// NewDetector makes a detector.
func NewDetector(cfg DetectorConfig) *Detector {
	if cfg.GridWidth <= 0 {
		cfg.GridWidth = 64
	}
	s := min(max(cfg.Sensitivity, 0), 1)
	return &Detector{
		cfg:           cfg,
		cellThreshold: int((6 + (1-s)*34) * 16), // 6 to 40 luma levels
		areaThreshold: 0.001 + (1-s)*0.02,       // 0.1 % to 2.1 % of the area
	}
}

// Result is the analysis of one frame.
type Result struct {
	// Score is the share of watched cells that changed.
	Score  float64
	Motion bool
}

// Analyse compares the frame with the background and updates it. The first
// frame (and the first after a size change) only primes the background.
func (d *Detector) Analyse(f media.RawFrame) (Result, error) {
	p, err := luma(f)
	if err != nil {
		return Result{}, err
	}
	if p.width != d.srcW || p.height != d.srcH {
		d.resize(p.width, p.height)
	}
	p.downscale(d.gw, d.gh, d.cur)
	if !d.primed {
		copy(d.bg, d.cur)
		d.primed = true
		return Result{}, nil
	}
	// A global change (lights, auto exposure) moves every cell alike: take
	// the mean difference out before judging cells.
	var sum int
	for i, w := range d.watched {
		if w {
			sum += int(d.cur[i]) - int(d.bg[i])
		}
	}
	mean := sum / max(d.nWatched, 1)
	changed := 0
	for i, w := range d.watched {
		diff := int(d.cur[i]) - int(d.bg[i]) - mean
		if w && (diff > d.cellThreshold || -diff > d.cellThreshold) {
			changed++
		}
		// Adapt slowly (1/8 per analysed frame) so that a parked car or a moved
		// chair becomes background within a few seconds.
		d.bg[i] = uint16(int(d.bg[i]) + (int(d.cur[i])-int(d.bg[i]))/8)
	}
	score := float64(changed) / float64(max(d.nWatched, 1))
	return Result{Score: score, Motion: d.nWatched > 0 && score >= d.areaThreshold}, nil
}

func (d *Detector) resize(w, h int) {
	d.srcW, d.srcH = w, h
	d.gw = min(d.cfg.GridWidth, w)
	d.gh = max(1, min(h, (d.gw*h+w/2)/w))
	n := d.gw * d.gh
	d.bg, d.cur, d.watched = make([]uint16, n), make([]uint16, n), make([]bool, n)
	d.nWatched = 0
	for cy := 0; cy < d.gh; cy++ {
		for cx := 0; cx < d.gw; cx++ {
			in := len(d.cfg.Zones) == 0
			for _, z := range d.cfg.Zones {
				in = in || z.contains(cx, cy, d.gw, d.gh)
			}
			for _, m := range d.cfg.Masks {
				in = in && !m.contains(cx, cy, d.gw, d.gh)
			}
			d.watched[cy*d.gw+cx] = in
			if in {
				d.nWatched++
			}
		}
	}
	d.primed = false
}

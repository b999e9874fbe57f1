package viewer

import (
	"fmt"
	"slices"
	"time"
)

// Summary is what a viewing session measured.
type Summary struct {
	Camera    string  `json:"camera"`
	Codec     string  `json:"codec"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	Frames    int     `json:"frames"`
	KeyFrames int     `json:"key_frames"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	FPS       float64 `json:"fps"`
	Kbps      float64 `json:"kbps"`
	// Latency is from capture (camera clock) to arrival (viewer clock);
	// meaningful when both clocks agree, as on loopback or with NTP.
	LatencyP50ms float64 `json:"latency_p50_ms"`
	LatencyP99ms float64 `json:"latency_p99_ms"`
	// GroupsSkipped counts groups of pictures abandoned because a newer one
	// arrived first (the viewer fell behind).
	GroupsSkipped uint64 `json:"groups_skipped"`
	Output        string `json:"output,omitempty"`
	// PathStats, when the session knows its paths (Options.Paths): direct
	// or relay, time to direct, bytes per path.
	*PathStats
}

// meter accumulates per-frame figures for periodic and final reports.
type meter struct {
	start     time.Time
	frames    int
	keys      int
	bytes     int64
	latencies []time.Duration
	// window holds the figures since the last periodic report.
	winStart  time.Time
	winFrames int
	winBytes  int64
	winLat    []time.Duration
}

func newMeter(now time.Time) *meter {
	return &meter{start: now, winStart: now}
}

func (m *meter) add(size int, key bool, latency time.Duration) {
	m.frames++
	m.winFrames++
	m.bytes += int64(size)
	m.winBytes += int64(size)
	if key {
		m.keys++
	}
	m.latencies = append(m.latencies, latency)
	m.winLat = append(m.winLat, latency)
}

// line formats the window's figures and starts a new window.
func (m *meter) line(now time.Time) string {
	secs := now.Sub(m.winStart).Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	p50, p99 := percentiles(m.winLat)
	s := fmt.Sprintf("%6.1fs  %5.1f fps  %7.0f kbit/s  latency p50 %.1f ms p99 %.1f ms",
		now.Sub(m.start).Seconds(), float64(m.winFrames)/secs, float64(m.winBytes)*8/1000/secs,
		ms(p50), ms(p99))
	m.winStart, m.winFrames, m.winBytes, m.winLat = now, 0, 0, m.winLat[:0]
	return s
}

func (m *meter) summary(now time.Time) Summary {
	secs := now.Sub(m.start).Seconds()
	p50, p99 := percentiles(m.latencies)
	s := Summary{Frames: m.frames, KeyFrames: m.keys, Bytes: m.bytes, Seconds: round(secs, 3),
		LatencyP50ms: round(ms(p50), 2), LatencyP99ms: round(ms(p99), 2)}
	if secs > 0 {
		s.FPS = round(float64(m.frames)/secs, 2)
		s.Kbps = round(float64(m.bytes)*8/1000/secs, 1)
	}
	return s
}

// percentiles returns the 50th and 99th percentile (nearest rank).
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[rank(len(s), 50)], s[rank(len(s), 99)]
}

func rank(n, p int) int {
	r := (n*p + 99) / 100
	if r < 1 {
		r = 1
	}
	return r - 1
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

package motion

import (
	"bytes"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// scene draws a w x h I420 frame: a textured background at brightness
// base, sensor noise, and (if size > 0) a bright square at (sx, sy).
func scene(rng *rand.Rand, w, h, base, sx, sy, size int) media.RawFrame {
	data := make([]byte, w*h*3/2)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := base + (x*7+y*3)%40 + rng.IntN(7) - 3
			if size > 0 && x >= sx && x < sx+size && y >= sy && y < sy+size {
				v = 235
			}
			data[y*w+x] = byte(min(max(v, 0), 255))
		}
	}
	for i := w * h; i < len(data); i++ {
		data[i] = 128
	}
	return media.RawFrame{Format: media.PixI420, Width: w, Height: h, Data: data}
}

func TestDetector(t *testing.T) {
	full := []Rect{{0, 0, 1, 1}}
	tests := []struct {
		name        string
		zones       []Rect
		masks       []Rect
		brightness  int // added to the second frame's background
		square      bool
		sensitivity float64
		want        bool
	}{
		{"still scene", nil, nil, 0, false, 0.5, false},
		{"still scene, most sensitive", nil, nil, 0, false, 1, false},
		{"object appears", nil, nil, 0, true, 0.5, true},
		{"lights come on", nil, nil, 40, false, 0.5, false},
		{"object outside the zone", []Rect{{0, 0, 0.3, 0.3}}, nil, 0, true, 0.5, false},
		{"object inside the zone", []Rect{{0.4, 0.4, 0.5, 0.5}}, nil, 0, true, 0.5, true},
		{"object under a mask", full, []Rect{{0.4, 0.4, 0.4, 0.4}}, 0, true, 0.5, false},
		{"object too small for low sensitivity", nil, nil, 0, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 1))
			d := NewDetector(DetectorConfig{Sensitivity: tt.sensitivity, Zones: tt.zones, Masks: tt.masks})
			if _, err := d.Analyse(scene(rng, 320, 180, 60, 0, 0, 0)); err != nil {
				t.Fatal(err)
			}
			size := 0
			if tt.square {
				size = 30 // ~1.6 % of the frame, centred at (175, 95)
			}
			res, err := d.Analyse(scene(rng, 320, 180, 60+tt.brightness, 160, 80, size))
			if err != nil {
				t.Fatal(err)
			}
			if res.Motion != tt.want {
				t.Fatalf("motion %v (score %.4f), want %v", res.Motion, res.Score, tt.want)
			}
		})
	}
}

func TestLumaFormats(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	i420 := scene(rng, 64, 48, 50, 10, 10, 20)
	yuyv := media.RawFrame{Format: media.PixYUYV, Width: 64, Height: 48, Data: make([]byte, 64*48*2)}
	for i := 0; i < 64*48; i++ {
		yuyv.Data[2*i], yuyv.Data[2*i+1] = i420.Data[i], 128
	}
	jpg, err := JPEG(i420, 95)
	if err != nil {
		t.Fatal(err)
	}
	mjpeg := media.RawFrame{Format: media.PixMJPEG, Width: 64, Height: 48, Data: jpg}
	want := make([]uint16, 8*6)
	p, _ := luma(i420)
	p.downscale(8, 6, want)
	for _, f := range []media.RawFrame{yuyv, mjpeg} {
		got := make([]uint16, 8*6)
		p, err := luma(f)
		if err != nil {
			t.Fatal(err)
		}
		p.downscale(8, 6, got)
		for i := range got {
			if d := int(got[i]) - int(want[i]); d > 3*16 || d < -3*16 {
				t.Fatalf("%s cell %d: %d, I420 says %d", f.Format, i, got[i]/16, want[i]/16)
			}
		}
	}
	for _, bad := range []media.RawFrame{
		{Format: media.PixI420, Width: 64, Height: 48, Data: make([]byte, 100)},
		{Format: media.PixH264, Width: 64, Height: 48, Data: make([]byte, 10000)},
		{Format: media.PixMJPEG, Width: 64, Height: 48, Data: []byte("not a jpeg")},
		{Format: media.PixNV12, Width: 0, Height: 48},
	} {
		if _, err := NewDetector(DetectorConfig{}).Analyse(bad); err == nil {
			t.Fatalf("%s frame of %d bytes accepted", bad.Format, len(bad.Data))
		}
	}
}

func TestParseRect(t *testing.T) {
	if r, err := ParseRect(" 0.1, 0.2,0.5,0.25"); err != nil || r != (Rect{0.1, 0.2, 0.5, 0.25}) {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{"", "1,2,3", "0,0,0,1", "0.5,0,0.6,1", "a,b,c,d", "NaN,0,1,1", "-0.1,0,1,1"} {
		if _, err := ParseRect(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

// TestMonitorEvents runs a scene with two bursts of motion: two events
// with their times, snapshots that decode, and a log that survives a torn
// write.
func TestMonitorEvents(t *testing.T) {
	dir := t.TempDir()
	log, err := OpenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	var triggers int
	m := NewMonitor(MonitorConfig{
		Detector: DetectorConfig{Sensitivity: 0.5}, Interval: 100 * time.Millisecond, Cooldown: 2 * time.Second,
		Log: log, OnMotion: func(time.Time) { triggers++ },
	})
	rng := rand.New(rand.NewPCG(3, 3))
	t0 := time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)
	moving := func(s int) bool { return (s >= 50 && s < 80) || (s >= 200 && s < 220) } // 10 fps steps
	for step := 0; step < 300; step++ {
		f := scene(rng, 160, 90, 60, 0, 0, 0)
		if moving(step) {
			f = scene(rng, 160, 90, 60, step%100, 30, 16)
		}
		f.Captured = t0.Add(time.Duration(step) * 100 * time.Millisecond)
		m.Observe(f)
	}
	m.Close()
	log.Close()
	events, err := ReadEvents(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || triggers < 40 {
		t.Fatalf("events %+v, %d triggers", events, triggers)
	}
	// The end may trail the last movement by up to 2 s while the
	// background forgets the square's trail.
	for i, want := range []struct{ start, end time.Duration }{{5 * time.Second, 7900 * time.Millisecond}, {20 * time.Second, 21900 * time.Millisecond}} {
		ev := events[i]
		end := ev.End.Sub(t0)
		if ev.Start.Sub(t0) != want.start || end < want.end || end > want.end+2*time.Second || ev.Score <= 0 {
			t.Fatalf("event %d: %v to %v, want %v to %v", i, ev.Start.Sub(t0), ev.End.Sub(t0), want.start, want.end)
		}
		jpg, err := os.ReadFile(filepath.Join(dir, ev.Snapshot))
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(jpg))
		if err != nil || img.Bounds().Dx() != 160 {
			t.Fatalf("snapshot: %v", err)
		}
	}
	// A torn write (power cut mid-line) is skipped, and the next record
	// starts on a line of its own.
	f, _ := os.OpenFile(filepath.Join(dir, LogFile), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"kind":"start","id":"torn","sta`)
	f.Close()
	log, err = OpenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := log.append(record{Kind: "start", Event: Event{ID: "after", Start: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	log.Close()
	events, _ = ReadEvents(dir)
	if len(events) != 3 || events[2].ID != "after" {
		t.Fatalf("after a torn line: %+v", events)
	}
}

func FuzzParseLog(f *testing.F) {
	f.Add([]byte(`{"kind":"start","id":"a","start":"2025-01-01T00:00:00Z"}` + "\n" + `{"kind":"end","id":"a","end":"2025-01-01T00:00:05Z","score":0.1}` + "\n"))
	f.Add([]byte(`{"kind":"end","id":"x"}` + "\n{}\n\n" + strings.Repeat("x", 70000)))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, _ := parseLog(bytes.NewReader(data))
		for _, ev := range events {
			if ev.ID == "" {
				t.Fatal("event without id")
			}
		}
	})
}

func FuzzParseRect(f *testing.F) {
	f.Add("0,0,1,1")
	f.Add("0.25,0.25,0.5,0.5")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRect(s)
		if err == nil && (r.W <= 0 || r.H <= 0 || r.X < 0 || r.Y < 0 || r.X+r.W > 1.001 || r.Y+r.H > 1.001) {
			t.Fatalf("%q gave %+v", s, r)
		}
	})
}

// FuzzAnalyse feeds arbitrary frames: errors are fine, panics are not.
func FuzzAnalyse(f *testing.F) {
	f.Add(uint8(0), uint16(64), uint16(48), uint16(0), []byte{1, 2, 3})
	f.Add(uint8(2), uint16(16), uint16(16), uint16(40), make([]byte, 640))
	f.Fuzz(func(t *testing.T, format uint8, w, h, stride uint16, data []byte) {
		formats := []media.PixelFormat{media.PixI420, media.PixNV12, media.PixYUYV, media.PixMJPEG}
		fr := media.RawFrame{Format: formats[int(format)%len(formats)], Width: int(w % 2048), Height: int(h % 2048), Stride: int(stride), Data: data}
		d := NewDetector(DetectorConfig{})
		d.Analyse(fr)
		d.Analyse(fr)
		JPEG(fr, 50)
	})
}

// BenchmarkAnalyse640x360 is the motion detection cost per frame at
// 640x360 I420 (the figure in docs/recording.md), against copying the
// frame's luma once as a baseline.
func BenchmarkAnalyse640x360(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	frames := []media.RawFrame{scene(rng, 640, 360, 60, 100, 100, 40), scene(rng, 640, 360, 60, 300, 150, 40)}
	d := NewDetector(DetectorConfig{Sensitivity: 0.5})
	sink := make([]byte, 640*360)
	start := time.Now()
	for range 200 {
		copy(sink, frames[0].Data[:len(sink)])
	}
	copyNs := float64(time.Since(start).Nanoseconds()) / 200
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := d.Analyse(frames[i%2]); err != nil {
			b.Fatal(err)
		}
	}
	perFrame := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perFrame/1e3, "µs/frame")
	b.ReportMetric(perFrame/copyNs, "x-luma-copy")
	b.ReportMetric(perFrame*30/1e9*100, "%core@30fps")
}

func TestMonitorLifecycle(t *testing.T) {
	dir := t.TempDir()
	log, err := OpenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	m := NewMonitor(MonitorConfig{Detector: DetectorConfig{Sensitivity: 0.5}, Log: log})
	rng := rand.New(rand.NewPCG(3, 3))
	t0 := time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)
	frame := func(step int) media.RawFrame {
		f := scene(rng, 160, 90, 60, 0, 0, 0)
		if step >= 50 {
			f = scene(rng, 160, 90, 60, step%100, 30, 16)
		}
		f.Captured = t0.Add(time.Duration(step) * 100 * time.Millisecond)
		return f
	}
	step := 0
	for ; step < 100 && m.Events() == 0; step++ {
		m.Observe(frame(step))
	}
	if m.Events() != 1 {
		t.Fatalf("%d events, want one in progress", m.Events())
	}
	select {
	case <-m.Done():
		t.Fatal("Done closed before Close")
	default:
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-m.Done()
	if err := m.Err(); err != nil {
		t.Fatalf("Err after Close: %v", err)
	}
	events, err := ReadEvents(dir)
	if err != nil || len(events) != 1 || events[0].End.IsZero() {
		t.Fatalf("after Close: %+v, %v; want one ended event", events, err)
	}
	if _, err := os.Stat(filepath.Join(dir, events[0].Snapshot)); err != nil {
		t.Fatalf("snapshot not written by Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for n := step + 20; step < n; step++ {
		m.Observe(frame(step)) // motion after Close starts nothing
	}
	if events, _ := ReadEvents(dir); len(events) != 1 || m.Events() != 1 {
		t.Fatalf("after a second Close and more frames: %+v, %d events", events, m.Events())
	}
}

package viewer

import (
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	tests := []struct {
		in       []time.Duration
		p50, p99 time.Duration
	}{
		{nil, 0, 0},
		{[]time.Duration{5}, 5, 5},
		{[]time.Duration{3, 1, 2}, 2, 3},
		{seq(100), 50, 99},
		{seq(1000), 500, 990},
	}
	for _, tt := range tests {
		p50, p99 := percentiles(tt.in)
		if p50 != tt.p50 || p99 != tt.p99 {
			t.Errorf("percentiles(len %d) = %v, %v; want %v, %v", len(tt.in), p50, p99, tt.p50, tt.p99)
		}
	}
}

func seq(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(n - i)
	}
	return out
}

func TestMeterSummary(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := newMeter(t0)
	for i := range 30 {
		m.add(1000, i == 0, time.Duration(i)*time.Millisecond)
	}
	s := m.summary(t0.Add(time.Second))
	if s.Frames != 30 || s.KeyFrames != 1 || s.Bytes != 30000 || s.FPS != 30 || s.Kbps != 240 {
		t.Fatalf("summary %+v", s)
	}
	if s.LatencyP50ms != 14 || s.LatencyP99ms != 29 {
		t.Fatalf("latency %v %v", s.LatencyP50ms, s.LatencyP99ms)
	}
}

package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/camagent/camagent/board"
	"github.com/camagent/camagent/stream"
)

func start(t *testing.T, snap func() Snapshot) string {
	t.Helper()
	s, err := Listen("127.0.0.1:0", snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return "http://" + s.Addr().String()
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestHealthz(t *testing.T) {
	var healthy atomic.Bool
	base := start(t, func() Snapshot {
		return Snapshot{Healthy: healthy.Load(), Status: "1 viewers", FramesCaptured: 42, Hub: stream.HubStats{Viewers: 1}, NATMapping: "endpoint-independent"}
	})
	for _, tt := range []struct {
		healthy bool
		code    int
	}{{false, http.StatusServiceUnavailable}, {true, http.StatusOK}} {
		healthy.Store(tt.healthy)
		code, body := get(t, base+"/healthz")
		var got struct {
			Healthy    bool   `json:"healthy"`
			Frames     uint64 `json:"frames"`
			Viewers    int    `json:"viewers"`
			NATMapping string `json:"nat_mapping"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("healthz body %q: %v", body, err)
		}
		if code != tt.code || got.Healthy != tt.healthy || got.Frames != 42 || got.Viewers != 1 || got.NATMapping != "endpoint-independent" {
			t.Errorf("healthy=%v: %d %s", tt.healthy, code, body)
		}
	}
	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Errorf("unknown path: %d", code)
	}
}

func TestMetrics(t *testing.T) {
	thr := board.UnderVoltage | board.ThrottledSeen
	motion := uint64(3)
	base := start(t, func() Snapshot {
		return Snapshot{
			Healthy: true, FramesCaptured: 1234,
			Hub:   stream.HubStats{Viewers: 2, ViewersTotal: 5, FramesSent: 2000, BytesSent: 1 << 20},
			Model: "Raspberry Pi 4 Model B Rev 1.5",
			Zones: []board.Zone{{Name: "cpu-thermal", Celsius: 51.5}}, Throttled: &thr,
			MotionEvents: &motion, MotionActive: true,
			NATMapping: "endpoint-dependent", ViewersRelayed: 1,
			NAT: NATStats{PunchRequests: 7, Punches: 60, Refused: 2, Sprays: 1, Holes: 1},
		}
	})
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d %s", code, body)
	}
	families, err := parseMetrics(body)
	if err != nil {
		t.Fatalf("metrics do not parse as Prometheus text: %v\n%s", err, body)
	}
	want := []struct {
		name  string
		label string // "name=value" or ""
		value float64
	}{
		{"camagent_healthy", "", 1},
		{"camagent_frames_captured_total", "", 1234},
		{"camagent_viewers", "", 2},
		{"camagent_viewers_total", "", 5},
		{"camagent_hub_frames_sent_total", "", 2000},
		{"camagent_hub_bytes_sent_total", "", 1 << 20},
		{"camagent_board_info", "model=Raspberry Pi 4 Model B Rev 1.5", 1},
		{"camagent_temperature_celsius", "zone=cpu-thermal", 51.5},
		{"camagent_throttled", "reason=under-voltage", 1},
		{"camagent_throttled", "reason=throttled-since-boot", 1},
		{"camagent_throttled", "reason=throttled", 0},
		{"camagent_motion_events_total", "", 3},
		{"camagent_motion_active", "", 1},
		{"camagent_nat_mapping", "behaviour=endpoint-dependent", 1},
		{"camagent_viewers_relayed", "", 1},
		{"camagent_nat_punch_requests_total", "", 7},
		{"camagent_nat_punches_total", "", 60},
		{"camagent_nat_refused_total", "", 2},
		{"camagent_nat_sprays_total", "", 1},
		{"camagent_nat_holes_total", "", 1},
	}
	for _, w := range want {
		got, ok := find(families[w.name], w.label)
		if !ok || got != w.value {
			t.Errorf("%s{%s} = %v (found %v), want %v", w.name, w.label, got, ok, w.value)
		}
	}
	if _, ok := families["process_resident_memory_bytes"]; !ok {
		t.Error("no process metrics (RSS)")
	}
}

// TestMetricsWithoutBoard: a machine without device tree, sensors or PIR
// exports the agent's figures and no empty board series.
func TestMetricsWithoutBoard(t *testing.T) {
	base := start(t, func() Snapshot { return Snapshot{} })
	_, body := get(t, base+"/metrics")
	families, err := parseMetrics(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"camagent_board_info", "camagent_temperature_celsius", "camagent_throttled", "camagent_motion_events_total"} {
		if _, ok := families[name]; ok {
			t.Errorf("%s exported without a board", name)
		}
	}
	if v, ok := find(families["camagent_healthy"], ""); !ok || v != 0 {
		t.Errorf("camagent_healthy = %v, %v", v, ok)
	}
}

func TestListenError(t *testing.T) {
	if _, err := Listen("127.0.0.1:notaport", func() Snapshot { return Snapshot{} }, nil); err == nil {
		t.Fatal("Listen on a bad address succeeded")
	}
}

func parseMetrics(body []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(body))
}

func find(f *dto.MetricFamily, label string) (float64, bool) {
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if label != "" && !hasLabel(m, label) {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, nv string) bool {
	for _, l := range m.Label {
		if l.GetName()+"="+l.GetValue() == nv {
			return true
		}
	}
	return false
}

func TestServerLifecycle(t *testing.T) {
	snap := func() Snapshot { return Snapshot{} }
	t.Run("Close", func(t *testing.T) {
		s, err := Listen("127.0.0.1:0", snap, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-s.Done()
		if err := s.Err(); err != nil {
			t.Fatalf("Err after Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("listener fails", func(t *testing.T) {
		s, err := Listen("127.0.0.1:0", snap, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.ln.Close() // Serve's Accept fails, as when the socket goes away
		<-s.Done()
		if err := s.Err(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Err = %v, want %v", err, net.ErrClosed)
		}
		if err := s.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Close after failure = %v, want the failure", err)
		}
		if err := s.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close = %v", err)
		}
	})
}

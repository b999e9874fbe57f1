package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camagent/camagent/capture"
	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/testtier"
)

// TestFirmwareFollowsAgent runs a real agent on the test source with a fake
// board tree: the LED goes from starting to registered once frames flow,
// the status endpoint reports health, frames, the board model and its
// temperature, and a clean stop hands the LED back to its trigger
// (Close returns, Done closes, Err is nil).
func TestFirmwareFollowsAgent(t *testing.T) {
	testtier.Slow(t, "an agent streaming QUIC on loopback")
	root := fakeBoard(t)
	cfg := config.Default()
	cfg.Name, cfg.StateDir, cfg.Listen = "fw-test", t.TempDir(), "127.0.0.1:0"
	cfg.Capture.Device, cfg.Capture.Width, cfg.Capture.Height, cfg.Capture.FPS = "test", 160, 120, 30
	cfg.Encode.Codec = "mjpeg" // pure Go: the test runs with CGO_ENABLED=0 too
	cfg.Status.Listen = "127.0.0.1:0"
	cfg.Board.Root, cfg.Board.LED = root, "ACT"
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fw := startFirmware(cfg, a, nil)
	defer fw.Close()
	trigger := filepath.Join(root, "sys/class/leds/ACT/trigger")
	if got, _ := os.ReadFile(trigger); string(got) != "timer" {
		t.Fatalf("LED trigger at start %q, want timer (starting blink)", got)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-runErr:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent never streamed")
	}
	// The LED follows on the next board tick.
	deadline := time.Now().Add(10 * time.Second)
	for got, _ := os.ReadFile(trigger); string(got) != "none"; got, _ = os.ReadFile(trigger) {
		if time.Now().After(deadline) {
			t.Fatalf("LED trigger %q, want none (registered: steady on)", got)
		}
		time.Sleep(50 * time.Millisecond) // the tick is in the firmware's own loop
	}
	if got, _ := os.ReadFile(filepath.Join(root, "sys/class/leds/ACT/brightness")); string(got) != "1" {
		t.Errorf("LED brightness %q, want 1", got)
	}

	base := "http://" + fw.status.Addr().String()
	if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK || !strings.Contains(body, `"healthy":true`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
	_, metrics := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`camagent_healthy 1`,
		`camagent_board_info{model="Raspberry Pi 4 Model B Rev 1.5"} 1`,
		`camagent_temperature_celsius{zone="cpu-thermal"} 47.7`,
		`camagent_viewers 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(metrics, "camagent_frames_captured_total 0\n") {
		t.Error("/metrics counts no captured frames")
	}

	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatalf("firmware Close: %v", err)
	}
	select {
	case <-fw.Done():
	default:
		t.Fatal("firmware Done not closed after Close")
	}
	if err := fw.Err(); err != nil {
		t.Errorf("firmware Err: %v, want nil", err)
	}
	if got, _ := os.ReadFile(trigger); string(got) != "mmc0" {
		t.Errorf("LED trigger after stop %q, want mmc0 back", got)
	}
}

// fakeBoard is a board tree: a Raspberry Pi's model, one thermal zone and
// the ACT LED on the mmc0 trigger.
func fakeBoard(t *testing.T) string {
	root := t.TempDir()
	files := map[string]string{
		"sys/firmware/devicetree/base/model":   "Raspberry Pi 4 Model B Rev 1.5\x00",
		"sys/class/thermal/thermal_zone0/temp": "47700\n",
		"sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
		"sys/class/leds/ACT/max_brightness":    "1\n",
		"sys/class/leds/ACT/brightness":        "0\n",
		"sys/class/leds/ACT/trigger":           "none timer heartbeat [mmc0]\n",
		"sys/class/leds/ACT/delay_on":          "",
		"sys/class/leds/ACT/delay_off":         "",
	}
	for p, data := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestFirmwareShowsFailure: after the agent failed, Close leaves the LED
// on the error pattern (fast blink) instead of handing it back.
func TestFirmwareShowsFailure(t *testing.T) {
	root := fakeBoard(t)
	cfg := config.Default()
	cfg.Name, cfg.StateDir, cfg.Listen = "fw-fail", t.TempDir(), "127.0.0.1:0"
	cfg.Capture.Device, cfg.Encode.Codec = "test", "mjpeg"
	cfg.Board.Root, cfg.Board.LED = root, "ACT"
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("no such camera")
	a.openSource = func() (capture.Source, error) { return nil, broken }
	fw := startFirmware(cfg, a, nil)
	if err := a.Run(context.Background()); !errors.Is(err, broken) {
		t.Fatalf("Run: %v, want %v", err, broken)
	}
	if err := fw.Close(); err != nil {
		t.Fatalf("firmware Close: %v", err)
	}
	led := filepath.Join(root, "sys/class/leds/ACT")
	trigger, _ := os.ReadFile(filepath.Join(led, "trigger"))
	on, _ := os.ReadFile(filepath.Join(led, "delay_on"))
	if string(trigger) != "timer" || string(on) != "100" {
		t.Errorf("LED after a failure: trigger %q delay_on %q, want timer 100 (fast blink)", trigger, on)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

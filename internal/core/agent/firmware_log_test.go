package agent

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/camagent/camagent/board"
)

// TestHardwareFailureLoggedOnce is issue 11 item 9: an LED the service
// cannot write (under the unit before the udev rules, /sys read-only)
// used to log a warning every second forever. A lasting failure is
// logged once, and once more when it works again.
func TestHardwareFailureLoggedOnce(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sys/class/leds/ACT")
	for name, data := range map[string]string{
		"max_brightness": "1\n", "brightness": "0\n", "trigger": "none timer heartbeat [mmc0]\n", "delay_off": "",
	} {
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// delay_on as a directory: every blink pattern fails to write it
	// (even as root, which DAC permissions would not stop).
	if err := os.Mkdir(filepath.Join(dir, "delay_on"), 0o755); err != nil {
		t.Fatal(err)
	}
	led, err := board.OpenLED(root, "ACT")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	f := &firmware{led: led, log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 5 { // five board ticks
		f.setLED(board.PatternStarting)
	}
	if n := strings.Count(buf.String(), "status LED failed"); n != 1 {
		t.Fatalf("5 failing ticks logged %d failures, want 1:\n%s", n, buf.String())
	}
	os.Remove(filepath.Join(dir, "delay_on"))
	if err := os.WriteFile(filepath.Join(dir, "delay_on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.setLED(board.PatternStarting)
	}
	if n := strings.Count(buf.String(), "status LED works again"); n != 1 {
		t.Fatalf("recovery logged %d times, want 1:\n%s", n, buf.String())
	}
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Errorf("%d log lines, want 2 (failed, works again):\n%s", n, buf.String())
	}
}

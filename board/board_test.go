package board

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// writeTree creates files (path -> contents) under a new temporary root.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestModel(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
		nodt  bool
	}{
		{"pi4 sysfs", map[string]string{"sys/firmware/devicetree/base/model": "Raspberry Pi 4 Model B Rev 1.5\x00"}, "Raspberry Pi 4 Model B Rev 1.5", false},
		{"proc only", map[string]string{"proc/device-tree/model": "Raspberry Pi Zero 2 W Rev 1.0\x00"}, "Raspberry Pi Zero 2 W Rev 1.0", false},
		{"qemu virt", map[string]string{"sys/firmware/devicetree/base/model": "linux,dummy-virt\x00"}, "linux,dummy-virt", false},
		{"no device tree", map[string]string{"sys/class/dmi/id/product_name": "Standard PC\n"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Model(writeTree(t, tt.files))
			if tt.nodt {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Model = %q, %v; want ErrNotExist", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Model = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestTemperatures(t *testing.T) {
	root := writeTree(t, map[string]string{
		"sys/class/thermal/thermal_zone0/temp": "48234\n",
		"sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
		"sys/class/thermal/thermal_zone1/temp": "-5000\n",   // no type file: named by directory
		"sys/class/thermal/thermal_zone2/temp": "garbage\n", // skipped
	})
	got, err := Temperatures(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []Zone{{"cpu-thermal", 48.234}, {"thermal_zone1", -5}}
	if !slices.Equal(got, want) {
		t.Fatalf("Temperatures = %v, want %v", got, want)
	}
	if z, err := Temperatures(t.TempDir()); err != nil || len(z) != 0 {
		t.Fatalf("no zones: %v, %v", z, err)
	}
}

func TestThrottled(t *testing.T) {
	tests := []struct {
		in      string
		want    Throttled
		reasons []string
		bad     bool
	}{
		{in: "0\n", want: 0},
		{in: "50005\n", want: 0x50005, reasons: []string{"under-voltage", "throttled", "under-voltage-since-boot", "throttled-since-boot"}},
		{in: "throttled=0x80008", want: 0x80008, reasons: []string{"soft-temperature-limit", "soft-temperature-limit-since-boot"}},
		{in: "0x100000", want: 0x100000, reasons: []string{"unknown-bits-0x100000"}},
		{in: "", bad: true},
		{in: "zz", bad: true},
		{in: "1ffffffff", bad: true}, // wider than the 32-bit word
	}
	for _, tt := range tests {
		got, err := ParseThrottled(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseThrottled(%q) = %#x, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want || !slices.Equal(got.Reasons(), tt.reasons) {
			t.Errorf("ParseThrottled(%q) = %#x %v, %v; want %#x %v", tt.in, got, got.Reasons(), err, tt.want, tt.reasons)
		}
	}
	root := writeTree(t, map[string]string{throttledPath: "4\n"})
	if got, err := ReadThrottled(root); err != nil || got != ThrottledNow {
		t.Fatalf("ReadThrottled = %v, %v", got, err)
	}
	if _, err := ReadThrottled(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadThrottled without firmware: %v, want ErrNotExist", err)
	}
}

// fakeLEDTree is an LED as the kernel shows it; timer's delay files exist
// up front (the kernel creates them when the timer trigger is selected).
func fakeLEDTree(t *testing.T) (root, dir string) {
	root = writeTree(t, map[string]string{
		"sys/class/leds/ACT/max_brightness": "255\n",
		"sys/class/leds/ACT/brightness":     "0\n",
		"sys/class/leds/ACT/trigger":        "none timer heartbeat [mmc0] default-on\n",
		"sys/class/leds/ACT/delay_on":       "",
		"sys/class/leds/ACT/delay_off":      "",
	})
	return root, filepath.Join(root, "sys/class/leds/ACT")
}

func TestLEDPatterns(t *testing.T) {
	root, dir := fakeLEDTree(t)
	led, err := OpenLED(root, "ACT")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		p    Pattern
		want map[string]string
	}{
		{PatternStarting, map[string]string{"trigger": "timer", "delay_on": "500", "delay_off": "500"}},
		{PatternRegistered, map[string]string{"trigger": "none", "brightness": "255"}},
		{PatternStreaming, map[string]string{"trigger": "heartbeat"}},
		{PatternError, map[string]string{"trigger": "timer", "delay_on": "100", "delay_off": "100"}},
		{PatternOff, map[string]string{"trigger": "none", "brightness": "0"}},
	}
	for _, tt := range tests {
		if err := led.Set(tt.p); err != nil {
			t.Fatalf("Set(%s): %v", tt.p, err)
		}
		for attr, want := range tt.want {
			if got, _ := os.ReadFile(filepath.Join(dir, attr)); string(got) != want {
				t.Errorf("%s: %s = %q, want %q", tt.p, attr, got, want)
			}
		}
	}
	if err := led.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "trigger")); string(got) != "mmc0" {
		t.Errorf("Close left trigger %q, want the board's mmc0 back", got)
	}
}

func TestLEDErrors(t *testing.T) {
	root, dir := fakeLEDTree(t)
	for _, name := range []string{"", "..", "../../etc", "nope"} {
		if _, err := OpenLED(root, name); err == nil {
			t.Errorf("OpenLED(%q) succeeded", name)
		}
	}
	led, err := OpenLED(root, "ACT")
	if err != nil {
		t.Fatal(err)
	}
	// A kernel without the timer trigger: no delay files appear.
	os.Remove(filepath.Join(dir, "delay_on"))
	if err := led.Set(PatternError); err == nil {
		t.Error("Set(error) without delay_on succeeded")
	}
	if err := led.Set(Pattern(42)); err == nil {
		t.Error("Set(42) succeeded")
	}
}

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestMotion(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	started := 0
	m := NewMotion(10*time.Second, clk.now, func() { started++ })
	if m.Active() {
		t.Fatal("active before any edge")
	}
	m.Edge(true)
	m.Edge(true) // a repeated level is not a new event
	if !m.Active() || m.Events() != 1 || started != 1 {
		t.Fatalf("after rise: active=%v events=%d started=%d", m.Active(), m.Events(), started)
	}
	m.Edge(false)
	clk.advance(5 * time.Second)
	if !m.Active() {
		t.Fatal("inactive within the hold time")
	}
	m.Edge(true) // within hold: same event
	m.Edge(false)
	clk.advance(10 * time.Second)
	if m.Active() || m.Events() != 1 {
		t.Fatalf("after hold: active=%v events=%d", m.Active(), m.Events())
	}
	m.Edge(true)
	if m.Events() != 2 || started != 2 {
		t.Fatalf("new event after hold: events=%d started=%d", m.Events(), started)
	}
}

// fakeLine records the levels written to a GPIO output.
type fakeLine struct {
	levels []int
	err    error
	closed bool
}

func (l *fakeLine) SetValue(v int) error {
	if l.err != nil {
		return l.err
	}
	l.levels = append(l.levels, v)
	return nil
}
func (l *fakeLine) Close() error { l.closed = true; return nil }

func TestIRCut(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		line := &fakeLine{}
		c, err := NewIRCut(line, activeLow)
		if err != nil {
			t.Fatal(err)
		}
		c.SetNight(true)
		c.SetNight(true) // no change, no write
		c.SetNight(false)
		want := []int{1, 0, 1}
		if activeLow {
			want = []int{0, 1, 0}
		}
		if !slices.Equal(line.levels, want) || c.Night() {
			t.Errorf("activeLow=%v: levels %v, want %v; night=%v", activeLow, line.levels, want, c.Night())
		}
		c.Close()
		if !line.closed {
			t.Error("Close did not release the line")
		}
	}
	if _, err := NewIRCut(&fakeLine{err: errors.New("EBUSY")}, false); err == nil {
		t.Error("NewIRCut on a failing line succeeded")
	}
}

func TestWatchdog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "watchdog") // a file stands in for the device
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := OpenWatchdog(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := w.Kick(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Kick(); err == nil {
		t.Error("Kick after Close succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "\x00\x00\x00V" {
		t.Errorf("watchdog saw %q, want three kicks and the magic close", got)
	}
	if _, err := OpenWatchdog(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("OpenWatchdog on a missing device succeeded")
	}
}

func TestRequestMissingChip(t *testing.T) {
	if _, err := RequestOutput("gpiochip-camagent-none", 0, 0); err == nil {
		t.Error("RequestOutput on a missing chip succeeded")
	}
	if _, err := RequestInput("gpiochip-camagent-none", 0, 0, func(bool) {}); err == nil {
		t.Error("RequestInput on a missing chip succeeded")
	}
}

func FuzzParseThrottled(f *testing.F) {
	for _, s := range []string{"0", "50005\n", "throttled=0x80008", "0X1", "", "-1", "ffffffff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseThrottled(s)
		if err != nil && v != 0 {
			t.Fatalf("error with a value: %#x, %v", v, err)
		}
		_ = v.Reasons()
	})
}

func FuzzParseMilliCelsius(f *testing.F) {
	for _, s := range []string{"48234\n", "-5000", "", "1e9", "2147483648"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseMilliCelsius(s)
		if err == nil && (c > 2147484 || c < -2147484) {
			t.Fatalf("%q parsed to an impossible %g °C", s, c)
		}
	})
}

func FuzzActiveTrigger(f *testing.F) {
	for _, s := range []string{"none [mmc0] timer", "[none]", "[", "[]", "a [b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := ActiveTrigger(s); got == "" {
			t.Fatalf("ActiveTrigger(%q) is empty", s)
		}
	})
}

// TestLEDWaitsForUdev: selecting the timer trigger creates delay_on and
// delay_off owned by root; udev hands them to the camagent group a moment
// later (systemd/camagent.udev). Set waits for that instead of failing,
// and gives up after newAttrWait.
func TestLEDWaitsForUdev(t *testing.T) {
	root, dir := fakeLEDTree(t)
	led, err := OpenLED(root, "ACT")
	if err != nil {
		t.Fatal(err)
	}
	var handedOver time.Time
	refusing := 0
	openAttr = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		if filepath.Base(name) == "delay_on" && time.Now().Before(handedOver) {
			refusing++
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
		}
		return os.OpenFile(name, flag, perm)
	}
	t.Cleanup(func() { openAttr, newAttrWait = os.OpenFile, time.Second })

	handedOver = time.Now().Add(150 * time.Millisecond)
	if err := led.Set(PatternError); err != nil {
		t.Fatalf("Set(error) while udev hands delay_on over: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "delay_on")); string(got) != "100" || refusing == 0 {
		t.Errorf("delay_on %q after %d refusals, want 100 after some", got, refusing)
	}

	newAttrWait = 100 * time.Millisecond
	handedOver = time.Now().Add(time.Hour) // no udev rule
	if err := led.Set(PatternStarting); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Set(starting) with delay_on never handed over: %v, want a permission error", err)
	}
}

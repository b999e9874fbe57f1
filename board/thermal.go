package board

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Zone is one thermal zone's reading.
type Zone struct {
	Name    string  // the zone's type, e.g. "cpu-thermal"
	Celsius float64 // current temperature
}

// Temperatures reads every thermal zone under root/sys/class/thermal.
// A zone that cannot be read (some report EIO while their sensor sleeps)
// is skipped, not fatal. No zones at all is an empty list.
func Temperatures(root string) ([]Zone, error) {
	dirs, err := filepath.Glob(filepath.Join(root, "sys/class/thermal/thermal_zone*"))
	if err != nil {
		return nil, err
	}
	slices.Sort(dirs)
	var zones []Zone
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, "temp"))
		if err != nil {
			continue
		}
		c, err := ParseMilliCelsius(string(raw))
		if err != nil {
			continue
		}
		name := filepath.Base(dir)
		if t, err := os.ReadFile(filepath.Join(dir, "type")); err == nil {
			name = strings.TrimSpace(string(t))
		}
		zones = append(zones, Zone{Name: name, Celsius: c})
	}
	return zones, nil
}

// ParseMilliCelsius parses a thermal zone's temp file: an integer in
// millidegrees Celsius (Documentation/ABI/testing/sysfs-class-thermal).
func ParseMilliCelsius(s string) (float64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("thermal temp %q: %w", s, err)
	}
	return float64(v) / 1000, nil
}

// Throttled is the Raspberry Pi firmware's throttling state, the bits that
// `vcgencmd get_throttled` prints; the kernel's raspberrypi-hwmon driver
// exposes the same word as get_throttled.
type Throttled uint32

// Bits of the get_throttled word (raspberrypi.com documentation,
// "vcgencmd get_throttled"). The low bits are now, bits 16-19 since boot.
const (
	UnderVoltage       Throttled = 1 << 0
	FreqCapped         Throttled = 1 << 1
	ThrottledNow       Throttled = 1 << 2
	SoftTempLimit      Throttled = 1 << 3
	UnderVoltageSeen   Throttled = 1 << 16
	FreqCappedSeen     Throttled = 1 << 17
	ThrottledSeen      Throttled = 1 << 18
	SoftTempLimitSeen  Throttled = 1 << 19
	throttledKnownBits           = 0xf000f
)

// throttledPath is the firmware driver's attribute on Raspberry Pi boards.
const throttledPath = "sys/devices/platform/soc/soc:firmware/get_throttled"

// ReadThrottled reads the Pi firmware's throttling word. Boards without
// the attribute give an error wrapping fs.ErrNotExist.
func ReadThrottled(root string) (Throttled, error) {
	raw, err := os.ReadFile(filepath.Join(root, throttledPath))
	if err != nil {
		return 0, fmt.Errorf("throttling: %w", err)
	}
	return ParseThrottled(string(raw))
}

// ParseThrottled parses the attribute's text: a hexadecimal word, with or
// without 0x (the driver prints "%x"; vcgencmd prints "throttled=0x50005").
func ParseThrottled(s string) (Throttled, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "throttled=")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("throttling word %q: %w", s, err)
	}
	return Throttled(v), nil
}

// Reasons names the set bits, e.g. ["under-voltage", "throttled-since-boot"].
func (t Throttled) Reasons() []string {
	names := []struct {
		bit  Throttled
		name string
	}{
		{UnderVoltage, "under-voltage"}, {FreqCapped, "frequency-capped"},
		{ThrottledNow, "throttled"}, {SoftTempLimit, "soft-temperature-limit"},
		{UnderVoltageSeen, "under-voltage-since-boot"}, {FreqCappedSeen, "frequency-capped-since-boot"},
		{ThrottledSeen, "throttled-since-boot"}, {SoftTempLimitSeen, "soft-temperature-limit-since-boot"},
	}
	var out []string
	for _, n := range names {
		if t&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if t&^throttledKnownBits != 0 {
		out = append(out, fmt.Sprintf("unknown-bits-%#x", uint32(t&^throttledKnownBits)))
	}
	return out
}

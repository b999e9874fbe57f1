package board

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Pattern is what the status LED shows.
type Pattern int

// The agent's states as LED patterns. Blinking is left to the kernel's
// timer trigger (Documentation/leds/ledtrig-timer.rst), so no goroutine
// has to wake up to toggle it.
const (
	PatternOff        Pattern = iota
	PatternStarting           // slow blink: booting, waiting for the camera
	PatternRegistered         // steady on: capturing, ready for viewers
	PatternStreaming          // heartbeat: at least one viewer watching
	PatternError              // fast blink: capture failed
)

func (p Pattern) String() string {
	switch p {
	case PatternOff:
		return "off"
	case PatternStarting:
		return "starting"
	case PatternRegistered:
		return "registered"
	case PatternStreaming:
		return "streaming"
	case PatternError:
		return "error"
	}
	return fmt.Sprintf("pattern(%d)", int(p))
}

// LED drives one LED in root/sys/class/leds (Documentation/ABI/testing/
// sysfs-class-led). The board's own use of the LED (often the mmc0
// trigger on a Pi's ACT LED) is replaced while the agent runs and put back
// by Close.
type LED struct {
	dir  string
	max  int
	orig string // trigger in use before we took over

	mu   sync.Mutex
	last Pattern
}

// OpenLED takes over the LED called name (e.g. "ACT", "led0").
func OpenLED(root, name string) (*LED, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("led %q: not an LED name", name)
	}
	dir := filepath.Join(root, "sys/class/leds", name)
	maxRaw, err := os.ReadFile(filepath.Join(dir, "max_brightness"))
	if err != nil {
		return nil, fmt.Errorf("led %s: %w", name, err)
	}
	maxB, err := strconv.Atoi(strings.TrimSpace(string(maxRaw)))
	if err != nil || maxB <= 0 {
		return nil, fmt.Errorf("led %s: max_brightness %q", name, strings.TrimSpace(string(maxRaw)))
	}
	trig, err := os.ReadFile(filepath.Join(dir, "trigger"))
	if err != nil {
		return nil, fmt.Errorf("led %s: %w", name, err)
	}
	return &LED{dir: dir, max: maxB, orig: ActiveTrigger(string(trig)), last: -1}, nil
}

// ActiveTrigger picks the selected trigger out of the trigger file, which
// lists them all with the active one in brackets: "none [mmc0] timer".
func ActiveTrigger(list string) string {
	for _, f := range strings.Fields(list) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			return f[1 : len(f)-1]
		}
	}
	return "none"
}

// Set shows p. Setting the pattern already shown does nothing, so callers
// may set it on every status tick.
func (l *LED) Set(p Pattern) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p == l.last {
		return nil
	}
	var err error
	switch p {
	case PatternOff:
		err = l.steady(0)
	case PatternRegistered:
		err = l.steady(l.max)
	case PatternStarting:
		err = l.blink(500, 500)
	case PatternError:
		err = l.blink(100, 100)
	case PatternStreaming:
		err = l.write("trigger", "heartbeat")
	default:
		err = fmt.Errorf("unknown pattern %d", p)
	}
	if err != nil {
		return fmt.Errorf("led %s: %s: %w", filepath.Base(l.dir), p, err)
	}
	l.last = p
	return nil
}

func (l *LED) steady(brightness int) error {
	if err := l.write("trigger", "none"); err != nil {
		return err
	}
	return l.write("brightness", strconv.Itoa(brightness))
}

// blink selects the timer trigger, which creates delay_on and delay_off
// (milliseconds), then sets them.
func (l *LED) blink(onMS, offMS int) error {
	if err := l.write("trigger", "timer"); err != nil {
		return err
	}
	if err := l.writeNew("delay_on", strconv.Itoa(onMS)); err != nil {
		return err
	}
	return l.writeNew("delay_off", strconv.Itoa(offMS))
}

// newAttrWait bounds how long writeNew waits for udev to hand a new
// attribute to the service's group.
var newAttrWait = time.Second

// openAttr opens a sysfs attribute; tests make it refuse.
var openAttr = os.OpenFile

// writeNew writes an attribute that selecting a trigger has just created.
// The kernel creates it owned by root; udev's rule (systemd/camagent.udev)
// gives it to the camagent group on the change uevent that announced the
// new trigger, a moment later. Until then writing it is refused.
func (l *LED) writeNew(attr, value string) error {
	deadline := time.Now().Add(newAttrWait)
	for {
		err := l.write(attr, value)
		if !errors.Is(err, fs.ErrPermission) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// write writes a sysfs attribute; attributes exist already, so a missing
// one is an error rather than a new file.
func (l *LED) write(attr, value string) error {
	f, err := openAttr(filepath.Join(l.dir, attr), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(value)
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}

// Close gives the LED back to the trigger it had.
func (l *LED) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.write("trigger", l.orig)
}

package capture

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/camagent/camagent/internal/base/media"
)

// Device is one V4L2 video capture node.
type Device struct {
	Path    string // /dev/videoN
	Name    string // v4l2_capability.card
	Driver  string // v4l2_capability.driver
	BusInfo string // v4l2_capability.bus_info, e.g. usb-0000:01:00.0-1.2
	Formats []FormatInfo
}

// FormatInfo is one pixel format a device offers.
type FormatInfo struct {
	FourCC      FourCC
	Pixel       media.PixelFormat // "" when camagent cannot use the format
	Description string            // the driver's description, e.g. "Motion-JPEG"
	Sizes       []Size
}

// Size is a frame size or, when Stepwise, a range of sizes. Rates lists the
// frame rates offered at that size (at the largest size of a range).
type Size struct {
	Width, Height int // the size; the maximum of a range
	Stepwise      bool
	MinWidth      int
	MinHeight     int
	StepWidth     int
	StepHeight    int
	Rates         []Rate
}

// Rate is a frame rate as a frame interval (Num/Den seconds per frame);
// Stepwise ones span [Min, Max] interval.
type Rate struct {
	Num, Den       uint32
	Stepwise       bool
	MaxNum, MaxDen uint32
}

// FPS returns the frame rate of a discrete interval, or the highest rate of
// a range; 0 when the interval is degenerate.
func (r Rate) FPS() float64 {
	if r.Num == 0 {
		return 0
	}
	return float64(r.Den) / float64(r.Num)
}

// String renders the size as 1280x720 or 16-1920/2 x 16-1080/2.
func (s Size) String() string {
	if !s.Stepwise {
		return fmt.Sprintf("%dx%d", s.Width, s.Height)
	}
	return fmt.Sprintf("%d-%d/%d x %d-%d/%d", s.MinWidth, s.Width, s.StepWidth, s.MinHeight, s.Height, s.StepHeight)
}

// String renders the rate in frames per second: 30, 29.97 or 1-30.
func (r Rate) String() string {
	if !r.Stepwise {
		return formatFPS(r.FPS())
	}
	slowest := 0.0
	if r.MaxNum != 0 {
		slowest = float64(r.MaxDen) / float64(r.MaxNum)
	}
	return formatFPS(slowest) + "-" + formatFPS(r.FPS())
}

func formatFPS(fps float64) string { return strconv.FormatFloat(fps, 'f', -1, 64) }

// PixelFormats lists the formats of d that camagent can use.
func (d Device) PixelFormats() []media.PixelFormat {
	var out []media.PixelFormat
	for _, f := range d.Formats {
		if f.Pixel != "" {
			out = append(out, f.Pixel)
		}
	}
	return out
}

// String is a one-line summary: path, name, driver and bus.
func (d Device) String() string {
	return fmt.Sprintf("%s  %s (%s, %s)", d.Path, d.Name, d.Driver, d.BusInfo)
}

// WriteDevices renders devices as the table `camagent devices` prints:
// one block per device, then a row per pixel format and frame size with
// its frame rates. Formats camagent cannot use are marked.
func WriteDevices(w io.Writer, devs []Device) error {
	if len(devs) == 0 {
		_, err := fmt.Fprintln(w, "no video capture devices found")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for i, d := range devs {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, d.String())
		fmt.Fprintln(tw, "  FORMAT\tDESCRIPTION\tSIZE\tFPS")
		for _, f := range d.Formats {
			writeFormatRows(tw, f)
		}
	}
	return tw.Flush()
}

func writeFormatRows(w io.Writer, f FormatInfo) {
	name := f.FourCC.String()
	if f.Pixel == "" {
		name += " (unsupported)"
	}
	if len(f.Sizes) == 0 {
		fmt.Fprintf(w, "  %s\t%s\t-\t-\n", name, f.Description)
		return
	}
	for i, s := range f.Sizes {
		if i > 0 {
			name, f.Description = "", ""
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", name, f.Description, s, ratesString(s.Rates))
	}
}

func ratesString(rates []Rate) string {
	if len(rates) == 0 {
		return "-"
	}
	parts := make([]string, len(rates))
	for i, r := range rates {
		parts[i] = r.String()
	}
	return strings.Join(parts, " ")
}

//go:build linux

package capture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// ListDevices returns the video capture nodes under devRoot (normally
// /dev), sorted by node number. A node counts when its device_caps (or, on
// drivers without them, its capabilities) include video capture and
// streaming I/O; metadata, output and M2M nodes, and files that are not
// V4L2 devices at all, are skipped. Nodes that cannot be opened (busy,
// permissions) are skipped too: they could not be captured from either.
func ListDevices(devRoot string) ([]Device, error) {
	paths, err := filepath.Glob(filepath.Join(devRoot, "video*"))
	if err != nil {
		return nil, fmt.Errorf("list devices in %s: %w", devRoot, err)
	}
	sort.Slice(paths, func(i, j int) bool { return nodeNumber(paths[i]) < nodeNumber(paths[j]) })
	var devs []Device
	for _, p := range paths {
		d, err := probeDevice(p)
		if err != nil {
			continue
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// nodeNumber orders /dev/video2 before /dev/video10.
func nodeNumber(path string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "video"))
	if err != nil {
		return int(^uint(0) >> 1)
	}
	return n
}

// errNotCapture marks a V4L2 node that is not a streaming capture node.
var errNotCapture = errors.New("not a streaming video capture node")

// probeDevice queries one node's identity and formats.
func probeDevice(path string) (Device, error) {
	caps, err := queryCapPath(path)
	if err != nil {
		return Device{}, err
	}
	if !caps.isStreamingCapture() {
		return Device{}, fmt.Errorf("%s: %w (%s)", path, errNotCapture, describeCaps(caps.nodeCaps()))
	}
	d := Device{
		Path:    path,
		Name:    cString(caps.Card[:]),
		Driver:  cString(caps.Driver[:]),
		BusInfo: cString(caps.BusInfo[:]),
	}
	cam, err := webcam.Open(path)
	if err != nil {
		return Device{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer cam.Close()
	d.Formats = enumerateFormats(cam)
	return d, nil
}

// queryCapPath opens path without side effects and issues VIDIOC_QUERYCAP.
func queryCapPath(path string) (v4l2Capability, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return v4l2Capability{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return v4l2Capability{}, err
	}
	// Only character devices can answer V4L2 ioctls; do not send them to
	// regular files or whatever else matched the glob.
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return v4l2Capability{}, fmt.Errorf("%s: not a character device", path)
	}
	caps, err := queryCap(fd)
	if err != nil {
		return v4l2Capability{}, fmt.Errorf("%s: VIDIOC_QUERYCAP: %w", path, err)
	}
	return caps, nil
}

// enumerateFormats lists formats, sizes and rates, sorted by fourcc.
func enumerateFormats(cam *webcam.Webcam) []FormatInfo {
	var out []FormatInfo
	for code, desc := range cam.GetSupportedFormats() {
		f := FormatInfo{FourCC: FourCC(code), Description: desc}
		f.Pixel, _ = f.FourCC.PixelFormat()
		for _, fs := range cam.GetSupportedFrameSizes(code) {
			s, ok := sizeOf(fs)
			if !ok {
				continue
			}
			for _, fr := range cam.GetSupportedFramerates(code, uint32(s.Width), uint32(s.Height)) {
				s.Rates = append(s.Rates, rateOf(fr))
			}
			f.Sizes = append(f.Sizes, s)
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FourCC.String() < out[j].FourCC.String() })
	return out
}

// sizeOf converts webcam's FrameSize. webcam leaves continuous ranges all
// zero; those are dropped rather than shown as 0x0.
func sizeOf(fs webcam.FrameSize) (Size, bool) {
	if fs.MaxWidth == 0 || fs.MaxHeight == 0 {
		return Size{}, false
	}
	s := Size{Width: int(fs.MaxWidth), Height: int(fs.MaxHeight)}
	if fs.StepWidth != 0 || fs.StepHeight != 0 {
		s.Stepwise = true
		s.MinWidth, s.MinHeight = int(fs.MinWidth), int(fs.MinHeight)
		s.StepWidth, s.StepHeight = int(fs.StepWidth), int(fs.StepHeight)
	}
	return s, true
}

// rateOf converts webcam's FrameRate (an interval range) to a Rate whose
// Num/Den is the shortest interval, i.e. the highest rate.
func rateOf(fr webcam.FrameRate) Rate {
	r := Rate{Num: fr.MinNumerator, Den: fr.MinDenominator}
	if fr.StepNumerator != 0 || fr.StepDenominator != 0 {
		r.Stepwise = true
		r.MaxNum, r.MaxDen = fr.MaxNumerator, fr.MaxDenominator
	}
	return r
}

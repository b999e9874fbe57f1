//go:build linux

package capture

import (
	"bytes"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds the few V4L2 ioctls that blackjack/webcam does not expose:
// VIDIOC_QUERYCAP with device_caps, VIDIOC_G_FMT and VIDIOC_QUERYBUF.
// Struct layouts follow include/uapi/linux/videodev2.h; Go lays these
// structs out like the C compiler does on every Linux architecture Go
// supports, and the sizes are encoded in the request numbers, so a layout
// mistake fails with ENOTTY rather than corrupting memory.

// Capability bits (videodev2.h).
const (
	capVideoCapture = 0x00000001
	capVideoOutput  = 0x00000002
	capVideoM2M     = 0x00008000
	capMetaCapture  = 0x00800000
	capStreaming    = 0x04000000
	capDeviceCaps   = 0x80000000
)

const (
	bufTypeVideoCapture = 1
	memoryMMAP          = 1

	// bufFlagTimestampMask selects the clock of v4l2_buffer.timestamp.
	bufFlagTimestampMask      = 0x0000e000
	bufFlagTimestampMonotonic = 0x00002000
)

type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

type v4l2PixFormat struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	BytesPerLine uint32
	SizeImage    uint32
	Colorspace   uint32
	Priv         uint32
	Flags        uint32
	YCbCrEnc     uint32
	Quantization uint32
	XferFunc     uint32
}

// v4l2Format is struct v4l2_format restricted to the single-planar member
// of its 200-byte union. The union holds pointers (struct v4l2_window), so
// it is pointer aligned: the zero-length uintptr array reproduces that.
type v4l2Format struct {
	Type uint32
	Fmt  struct {
		_   [0]uintptr
		Pix v4l2PixFormat
		_   [200 - unsafe.Sizeof(v4l2PixFormat{})]byte
	}
}

type v4l2Timecode struct {
	Type     uint32
	Flags    uint32
	Frames   uint8
	Seconds  uint8
	Minutes  uint8
	Hours    uint8
	Userbits [4]uint8
}

// v4l2Buffer is struct v4l2_buffer. The timestamp is a native struct
// timeval, which is what the request number below encodes.
type v4l2Buffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	Timestamp unix.Timeval
	Timecode  v4l2Timecode
	Sequence  uint32
	Memory    uint32
	M         uintptr // union { offset; userptr; planes; fd }
	Length    uint32
	Reserved2 uint32
	RequestFD int32
}

// ioc builds an ioctl request number as the kernel's _IOC macro does on
// the asm-generic layout (x86, arm, arm64, riscv).
func ioc(dir, nr, size uintptr) uintptr {
	const (
		nrShift   = 0
		typeShift = 8
		sizeShift = 16
		dirShift  = 30
	)
	return dir<<dirShift | size<<sizeShift | uintptr('V')<<typeShift | nr<<nrShift
}

const (
	iocWrite = 1
	iocRead  = 2
)

var (
	vidiocQueryCap = ioc(iocRead, 0, unsafe.Sizeof(v4l2Capability{}))
	vidiocGFmt     = ioc(iocRead|iocWrite, 4, unsafe.Sizeof(v4l2Format{}))
	vidiocQueryBuf = ioc(iocRead|iocWrite, 9, unsafe.Sizeof(v4l2Buffer{}))
)

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}

// queryCap issues VIDIOC_QUERYCAP.
func queryCap(fd int) (v4l2Capability, error) {
	var c v4l2Capability
	err := ioctl(fd, vidiocQueryCap, unsafe.Pointer(&c))
	return c, err
}

// nodeCaps is what this particular node can do: device_caps when the
// driver fills it (every driver since Linux 3.3 that has more than one
// node), otherwise the capabilities of the whole device.
func (c v4l2Capability) nodeCaps() uint32 {
	if c.Capabilities&capDeviceCaps != 0 {
		return c.DeviceCaps
	}
	return c.Capabilities
}

// isStreamingCapture reports whether the node is a single-planar video
// capture node with streaming I/O: not metadata, output or M2M.
func (c v4l2Capability) isStreamingCapture() bool {
	caps := c.nodeCaps()
	const want = capVideoCapture | capStreaming
	return caps&want == want && caps&capVideoM2M == 0
}

// getFormat issues VIDIOC_G_FMT for the capture queue: the format the
// driver actually settled on.
func getFormat(fd int) (v4l2PixFormat, error) {
	f := v4l2Format{Type: bufTypeVideoCapture}
	if err := ioctl(fd, vidiocGFmt, unsafe.Pointer(&f)); err != nil {
		return v4l2PixFormat{}, err
	}
	return f.Fmt.Pix, nil
}

// queryBufferRaw issues VIDIOC_QUERYBUF for an MMAP capture buffer.
// Between DQBUF and the next QBUF the kernel reports the sequence number,
// flags and timestamp the driver stamped on that buffer (videobuf2 and
// uvcvideo keep them until the buffer is filled again).
func queryBufferRaw(fd int, index uint32) (v4l2Buffer, error) {
	b := v4l2Buffer{Index: index, Type: bufTypeVideoCapture, Memory: memoryMMAP}
	err := ioctl(fd, vidiocQueryBuf, unsafe.Pointer(&b))
	return b, err
}

// monotonicNow reads CLOCK_MONOTONIC, the clock of V4L2 buffer timestamps.
func monotonicNow() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// cString converts a NUL-padded C string field.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// sameDevice reports whether fd refers to the character device at path.
func sameDevice(fd int, path string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(fd, &a); err != nil {
		return false, err
	}
	if err := unix.Stat(path, &b); err != nil {
		return false, err
	}
	return a.Mode&unix.S_IFMT == unix.S_IFCHR && a.Rdev == b.Rdev, nil
}

// describeCaps renders capability bits for error messages.
func describeCaps(caps uint32) string {
	var kinds []string
	for _, k := range []struct {
		bit  uint32
		name string
	}{
		{capVideoCapture, "capture"}, {capVideoOutput, "output"}, {capVideoM2M, "m2m"},
		{capMetaCapture, "metadata"}, {capStreaming, "streaming"},
	} {
		if caps&k.bit != 0 {
			kinds = append(kinds, k.name)
		}
	}
	return fmt.Sprintf("%#08x %v", caps, kinds)
}

//go:build linux

package capture

import (
	"os"
	"testing"
	"unsafe"

	"github.com/blackjack/webcam"
)

// TestStructSizes pins the ioctl struct sizes to the kernel's (64-bit and
// 32-bit layouts), since the request numbers encode them.
func TestStructSizes(t *testing.T) {
	ptr := unsafe.Sizeof(uintptr(0))
	tests := []struct {
		name   string
		got    uintptr
		want64 uintptr
		want32 uintptr
	}{
		{"v4l2_capability", unsafe.Sizeof(v4l2Capability{}), 104, 104},
		{"v4l2_format", unsafe.Sizeof(v4l2Format{}), 208, 204},
		{"v4l2_buffer", unsafe.Sizeof(v4l2Buffer{}), 88, 68},
	}
	for _, tt := range tests {
		want := tt.want64
		if ptr == 4 {
			want = tt.want32
		}
		if tt.got != want {
			t.Errorf("sizeof(%s) = %d, want %d", tt.name, tt.got, want)
		}
	}
	// Request numbers as the C headers compute them.
	for _, r := range []struct {
		name           string
		got            uintptr
		want64, want32 uintptr
	}{
		{"VIDIOC_QUERYCAP", vidiocQueryCap, 0x80685600, 0x80685600},
		{"VIDIOC_G_FMT", vidiocGFmt, 0xc0d05604, 0xc0cc5604},
		{"VIDIOC_QUERYBUF", vidiocQueryBuf, 0xc0585609, 0xc0445609},
	} {
		want := r.want64
		if ptr == 4 {
			want = r.want32
		}
		if r.got != want {
			t.Errorf("%s = %#x, want %#x", r.name, r.got, want)
		}
	}
}

// TestWebcamFD guards the reflection that finds webcam's descriptor: if a
// new webcam version renames or retypes the field, this fails (and capture
// falls back to a second handle without driver timestamps on uvcvideo).
func TestWebcamFD(t *testing.T) {
	if fd, ok := webcamFD(&webcam.Webcam{}); !ok || fd != 0 {
		t.Fatalf("webcamFD = %d, %v; want the zero fd field", fd, ok)
	}
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if same, err := sameDevice(int(f.Fd()), "/dev/null"); err != nil || !same {
		t.Errorf("sameDevice(/dev/null fd, /dev/null) = %v, %v", same, err)
	}
	if same, _ := sameDevice(int(f.Fd()), "/dev/zero"); same {
		t.Error("sameDevice(/dev/null fd, /dev/zero) = true")
	}
}

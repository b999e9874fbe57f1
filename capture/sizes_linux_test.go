//go:build linux

package capture

import (
	"testing"
	"unsafe"
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
	// Request numbers as printed by the C headers on 64-bit Linux.
	if ptr == 8 {
		for _, r := range []struct {
			name      string
			got, want uintptr
		}{
			{"VIDIOC_QUERYCAP", vidiocQueryCap, 0x80685600},
			{"VIDIOC_G_FMT", vidiocGFmt, 0xc0d05604},
			{"VIDIOC_QUERYBUF", vidiocQueryBuf, 0xc0585609},
		} {
			if r.got != r.want {
				t.Errorf("%s = %#x, want %#x", r.name, r.got, r.want)
			}
		}
	}
}

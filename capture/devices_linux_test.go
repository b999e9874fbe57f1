//go:build linux

package capture

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/testtier"
)

func TestListDevicesSkipsNonV4L2(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"empty dir", func(*testing.T, string) {}},
		{"regular file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "video0"), []byte("not a camera"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"character device that is not V4L2", func(t *testing.T, dir string) {
			if err := os.Symlink("/dev/null", filepath.Join(dir, "video1")); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory and dangling link", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "video2"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "video3")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			devs, err := ListDevices(dir)
			if err != nil || len(devs) != 0 {
				t.Fatalf("ListDevices = %v, %v; want none, no error", devs, err)
			}
		})
	}
	if _, err := ListDevices("/nonexistent"); err != nil {
		t.Errorf("missing dev root: %v", err)
	}
}

func TestNodeNumberOrder(t *testing.T) {
	tests := []struct {
		path string
		want int
	}{
		{"/dev/video0", 0}, {"/dev/video10", 10}, {"/dev/video-x", int(^uint(0) >> 1)},
	}
	for _, tt := range tests {
		if got := nodeNumber(tt.path); got != tt.want {
			t.Errorf("nodeNumber(%q) = %d, want %d", tt.path, got, tt.want)
		}
	}
}

func TestOpenDeviceRejectsNonV4L2(t *testing.T) {
	if _, err := openDevice("/dev/null", Config{}); err == nil {
		t.Error("openDevice(/dev/null) succeeded")
	}
}

// TestV4L2Capture runs against the first real capture device (vivid in the
// QEMU test, a webcam on a board). Set CAMAGENT_TEST_DEVICE to choose one.
func TestV4L2Capture(t *testing.T) {
	testtier.Slow(t, "opens a real V4L2 device")
	path := os.Getenv("CAMAGENT_TEST_DEVICE")
	if path == "" {
		devs, err := ListDevices(DefaultDevRoot)
		if err != nil || len(devs) == 0 {
			t.Skip("no V4L2 capture device (load vivid or set CAMAGENT_TEST_DEVICE); skipping")
		}
		path = devs[0].Path
		t.Logf("devices: %v", devs)
	}
	src, err := openDevice(path, Config{Width: 640, Height: 480, FPS: 25})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	format := src.Format()
	t.Logf("negotiated %v", format)
	if format.Width <= 0 || format.Height <= 0 || format.Pixel == "" {
		t.Fatalf("bad negotiated format %v", format)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last uint64
	for i := 0; i < 10; i++ {
		f, err := src.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Width != format.Width || f.Height != format.Height || len(f.Data) == 0 {
			t.Fatalf("frame %d: %dx%d %d bytes, format %v", f.Seq, f.Width, f.Height, len(f.Data), format)
		}
		if i > 0 && f.Seq <= last {
			t.Errorf("Seq went from %d to %d", last, f.Seq)
		}
		if age := time.Since(f.Captured); age < 0 || age > 2*time.Second {
			t.Errorf("frame %d captured %v ago", f.Seq, age)
		}
		last = f.Seq
	}
	if v, ok := src.(*v4l2Source); ok && v.queryBufErr != nil {
		t.Logf("driver timestamps unavailable: %v", v.queryBufErr)
	}
}

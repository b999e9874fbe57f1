package capture

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/camagent/camagent/internal/base/media"
)

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr string
	}{
		{in: "1280x720", want: Format{Width: 1280, Height: 720}},
		{in: "640x480@15", want: Format{Width: 640, Height: 480, FPS: 15}},
		{in: "mjpg:1920x1080@29.97", want: Format{Pixel: media.PixMJPEG, Width: 1920, Height: 1080, FPS: 29.97}},
		{in: "I420:320x240", want: Format{Pixel: media.PixI420, Width: 320, Height: 240}},
		{in: "MJPEG:320x240@5", want: Format{Pixel: media.PixMJPEG, Width: 320, Height: 240, FPS: 5}},
		{in: "H264:16384x1@1000", want: Format{Pixel: media.PixH264, Width: 16384, Height: 1, FPS: 1000}},
		{in: "", wantErr: "WIDTHxHEIGHT"},
		{in: "1280", wantErr: "WIDTHxHEIGHT"},
		{in: "1280*720", wantErr: "WIDTHxHEIGHT"},
		{in: "RGB3:640x480", wantErr: "unsupported pixel format"},
		{in: ":640x480", wantErr: "unsupported pixel format"},
		{in: "0x480", wantErr: "width"},
		{in: "640x0", wantErr: "height"},
		{in: "-640x480", wantErr: "width"},
		{in: "+640x480", wantErr: "width"},
		{in: "640x480x3", wantErr: "height"},
		{in: "16385x480", wantErr: "width"},
		{in: "99999999999999999999x480", wantErr: "width"},
		{in: "640x480@", wantErr: "rate"},
		{in: "640x480@0", wantErr: "rate"},
		{in: "640x480@-5", wantErr: "rate"},
		{in: "640x480@1001", wantErr: "rate"},
		{in: "640x480@NaN", wantErr: "rate"},
		{in: "640x480@Inf", wantErr: "rate"},
		{in: "640x480@1e1", wantErr: "rate"},
		{in: "640x480@0x1p4", wantErr: "rate"},
		{in: "640x480@30@30", wantErr: "rate"},
		{in: " 640x480", wantErr: "width"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFormat(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseFormat(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatString(t *testing.T) {
	tests := []struct {
		f    Format
		want string
	}{
		{Format{Width: 1280, Height: 720}, "1280x720"},
		{Format{Pixel: media.PixYUYV, Width: 640, Height: 480, FPS: 30}, "YUYV:640x480@30"},
		{Format{Pixel: media.PixNV12, Width: 1920, Height: 1080, FPS: 29.97}, "NV12:1920x1080@29.97"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		back, err := ParseFormat(tt.want)
		if err != nil || back != tt.f {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", tt.want, back, err, tt.f)
		}
	}
}

// FuzzParseFormat checks that ParseFormat never panics, and that what it
// accepts prints back to a string it parses to the same value.
func FuzzParseFormat(f *testing.F) {
	for _, s := range []string{"1280x720", "MJPG:640x480@30", "yu12:1x1@0.5", "640x480@29.97", "x@", ":x", "I420:16384x16384@1000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFormat(s)
		if err != nil {
			return
		}
		if got.Width < 1 || got.Width > maxDimension || got.Height < 1 || got.Height > maxDimension {
			t.Fatalf("ParseFormat(%q) accepted size %dx%d", s, got.Width, got.Height)
		}
		if got.FPS < 0 || got.FPS > maxFPS {
			t.Fatalf("ParseFormat(%q) accepted rate %v", s, got.FPS)
		}
		again, err := ParseFormat(got.String())
		if err != nil || again != got {
			t.Fatalf("round trip of %q via %q: %v, %v", s, got.String(), again, err)
		}
	})
}

func TestOpenTest(t *testing.T) {
	src, err := Open(Config{Device: DeviceTest, Width: 160, Height: 120, FPS: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want := Format{Pixel: media.PixI420, Width: 160, Height: 120, FPS: 200}
	if src.Format() != want {
		t.Errorf("Format = %v, want %v", src.Format(), want)
	}
	var last uint64
	for i := 0; i < 3; i++ {
		f, err := src.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && f.Seq <= last {
			t.Errorf("Seq went from %d to %d", last, f.Seq)
		}
		last = f.Seq
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Read(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
}

func TestOpenAutoFallsBack(t *testing.T) {
	for _, device := range []string{"", DeviceAuto} {
		var logs bytes.Buffer
		src, err := Open(Config{Device: device, DevRoot: t.TempDir(), Width: 64, Height: 48,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := src.(*testSource); !ok {
			t.Errorf("Device %q with no devices opened %T, want the test source", device, src)
		}
		if !strings.Contains(logs.String(), "synthetic test source") {
			t.Errorf("fallback not logged: %s", logs.String())
		}
		src.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []Config{
		{Device: "/nonexistent/video0"},
		{Device: DeviceTest, Pixel: media.PixH264},
	}
	for _, cfg := range tests {
		if src, err := Open(cfg); err == nil {
			src.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		} else if src != nil {
			t.Errorf("Open(%+v) returned %v with error %v", cfg, src, err)
		}
	}
}

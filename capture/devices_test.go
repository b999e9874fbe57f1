package capture

import (
	"bytes"
	"strings"
	"testing"

	"github.com/camagent/camagent/internal/base/media"
)

func TestWriteDevices(t *testing.T) {
	devs := []Device{{
		Path: "/dev/video0", Name: "HD Pro Webcam C920", Driver: "uvcvideo", BusInfo: "usb-0000:01:00.0-1.2",
		Formats: []FormatInfo{
			{FourCC: FourCCMJPG, Pixel: media.PixMJPEG, Description: "Motion-JPEG", Sizes: []Size{
				{Width: 1920, Height: 1080, Rates: []Rate{{Num: 1, Den: 30}, {Num: 1, Den: 15}}},
				{Width: 640, Height: 480, Rates: []Rate{{Num: 1001, Den: 30000}}},
			}},
			{FourCC: MakeFourCC('R', 'G', 'B', '3'), Description: "24-bit RGB", Sizes: []Size{
				{Stepwise: true, MinWidth: 16, Width: 1920, StepWidth: 2, MinHeight: 16, Height: 1080, StepHeight: 2,
					Rates: []Rate{{Num: 1, Den: 60, Stepwise: true, MaxNum: 1, MaxDen: 1}}},
			}},
			{FourCC: FourCCYUYV, Pixel: media.PixYUYV, Description: "YUYV 4:2:2"},
		},
	}}
	var out bytes.Buffer
	if err := WriteDevices(&out, devs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"/dev/video0  HD Pro Webcam C920 (uvcvideo, usb-0000:01:00.0-1.2)",
		"MJPG", "Motion-JPEG", "1920x1080", "30 15", "29.97",
		"RGB3 (unsupported)", "16-1920/2 x 16-1080/2", "1-60",
		"YUYV", "YUYV 4:2:2",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if got := devs[0].PixelFormats(); len(got) != 2 || got[0] != media.PixMJPEG || got[1] != media.PixYUYV {
		t.Errorf("PixelFormats = %v", got)
	}

	out.Reset()
	WriteDevices(&out, nil)
	if !strings.Contains(out.String(), "no video capture devices") {
		t.Errorf("empty list rendered as %q", out.String())
	}
}

package ffprobe

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/testtier"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    Video
		wantErr bool
	}{
		{"mp4", `{"streams":[{"codec_name":"h264","width":1280,"height":720,"nb_read_frames":"300"}],"format":{"duration":"10.000000"}}`,
			Video{Codec: "h264", Width: 1280, Height: 720, Frames: 300, Duration: 10 * time.Second}, false},
		{"raw", `{"streams":[{"codec_name":"mjpeg","width":320,"height":240,"nb_read_frames":"30"}],"format":{"duration":"N/A"}}`,
			Video{Codec: "mjpeg", Width: 320, Height: 240, Frames: 30}, false},
		{"no stream", `{"streams":[],"format":{}}`, Video{}, true},
		{"garbage", `not json`, Video{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse([]byte(tt.out))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parse = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestProbeRejectsNonVideo(t *testing.T) {
	testtier.Slow(t, "runs ffprobe")
	if !Available() {
		t.Skip("ffprobe not installed (make test installs it)")
	}
	path := filepath.Join(t.TempDir(), "junk.mp4")
	os.WriteFile(path, []byte("this is not a video"), 0o600)
	if v, err := Probe(path); err == nil {
		t.Fatalf("Probe of junk = %+v, want an error", v)
	}
}

// Package ffprobe runs Debian's ffprobe on a media file and reports what it
// decoded. Tests use it as a check of camagent's output that is independent
// of camagent's own parsers.
package ffprobe

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// Video is the first video stream of a file, as ffprobe decoded it.
type Video struct {
	Codec  string
	Width  int
	Height int
	// Frames is the number of frames ffprobe decoded (-count_frames), not
	// a figure read from a header.
	Frames int
	// Duration is the container's duration; 0 for raw elementary streams.
	Duration time.Duration
}

// Available reports whether ffprobe is on the PATH.
func Available() bool {
	_, err := exec.LookPath("ffprobe")
	return err == nil
}

// Probe decodes the file's first video stream with ffprobe.
func Probe(path string) (Video, error) {
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames:format=duration",
		"-of", "json", path).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return Video{}, fmt.Errorf("ffprobe %s: %v: %s", path, err, ee.Stderr)
		}
		return Video{}, fmt.Errorf("ffprobe %s: %w", path, err)
	}
	return parse(out)
}

func parse(out []byte) (Video, error) {
	var res struct {
		Streams []struct {
			CodecName    string `json:"codec_name"`
			Width        int    `json:"width"`
			Height       int    `json:"height"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return Video{}, fmt.Errorf("ffprobe output: %w", err)
	}
	if len(res.Streams) != 1 {
		return Video{}, fmt.Errorf("ffprobe found %d video streams, want 1", len(res.Streams))
	}
	s := res.Streams[0]
	v := Video{Codec: s.CodecName, Width: s.Width, Height: s.Height}
	v.Frames, _ = strconv.Atoi(s.NbReadFrames)
	if secs, err := strconv.ParseFloat(res.Format.Duration, 64); err == nil {
		v.Duration = time.Duration(secs * float64(time.Second))
	}
	return v, nil
}

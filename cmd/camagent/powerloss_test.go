package main

import (
	"encoding/json"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/camagent/camagent/capture/encode"
	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/storage"
	"github.com/camagent/camagent/storage/mp4scan"
)

// TestPowerLoss is `make powerloss-test`: it runs the real agent binary
// recording the test source, SIGKILLs it at random moments (and, every
// third time, also truncates the segment being written at a random offset,
// as a power cut that loses unsynced pages would), restarts it, and checks
// that every segment is whole (mp4scan) and decodes in ffprobe, and that a
// kill lost no more than the last fragment (1 s, plus a small allowance
// for capture-to-disk latency). Finally it exports a clip over QUIC with
// `camagent view --from --to` and checks it with ffprobe.
// POWERLOSS_KILLS sets the number of kills (default 12, about 45 s).
func TestPowerLoss(t *testing.T) {
	testtier.System(t, "make powerloss-test") // kills and restarts the agent for about a minute
	if !encode.SoftwareH264Available() {
		t.Skip("software H.264 unavailable (CGO_ENABLED=0)")
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed (make test installs it)")
	}
	kills := 12
	if n, err := strconv.Atoi(os.Getenv("POWERLOSS_KILLS")); err == nil && n > 0 {
		kills = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))

	dir := t.TempDir()
	bin := filepath.Join(dir, "camagent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "cam")
	recs := filepath.Join(state, "recordings")
	flags := []string{"--config", "/dev/null", "--name", "powerloss", "--state-dir", state,
		"--listen", "127.0.0.1:" + strconv.Itoa(freeUDPPort(t)), "--capture.device", "test", "--log.level", "warn",
		"--capture.width", "320", "--capture.height", "240", "--capture.fps", "30", "--encode.keyframe-interval", "30",
		"--storage.mode", "continuous", "--storage.segment-duration", "3s", "--storage.fsync",
		"--storage.min-free-megabytes", "0"}

	const allowance = 1300 * time.Millisecond // one fragment + capture/encode/queue latency
	var worst time.Duration
	for i := 0; i < kills; i++ {
		agent := startAgent(t, bin, flags)
		open := waitForFragment(t, recs)
		time.Sleep(time.Duration(rng.Int64N(int64(2500 * time.Millisecond)))) // a random moment
		killedAt := time.Now()
		agent.Process.Signal(syscall.SIGKILL)
		agent.Wait()
		truncated := i%3 == 2
		if truncated {
			truncateOpenSegment(t, recs, rng)
		}
		// The next start repairs; check the loss from its index.
		agent = startAgent(t, bin, flags)
		waitForNoOpenSegmentBefore(t, recs, open)
		agent.Process.Signal(syscall.SIGKILL) // killed again right after the repair
		agent.Wait()
		end := lastEndBefore(t, recs, killedAt)
		lost := killedAt.Sub(end)
		t.Logf("kill %d: lost %v (truncated %v)", i, lost.Round(time.Millisecond), truncated)
		if !truncated {
			worst = max(worst, lost)
			if lost > allowance {
				t.Errorf("kill %d lost %v of video, more than a fragment (%v)", i, lost, allowance)
			}
		}
	}
	t.Logf("worst loss over %d kills: %v (allowance %v)", kills, worst, allowance)

	// Start cleanly: every segment (the restart repairs the last) must be
	// whole and decode in ffprobe with every frame.
	agent := startAgent(t, bin, flags)
	waitForFragment(t, recs)
	// Some video after the last repair: a whole 3 s segment sealed, for
	// the export below.
	time.Sleep(4 * time.Second)
	checkAllSegments(t, recs)
	exportOverQUIC(t, bin, flags, dir, recs)
	agent.Process.Signal(syscall.SIGTERM)
	agent.Wait()
	checkAllSegments(t, recs)
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func startAgent(t *testing.T, bin string, flags []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"agent"}, flags...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// poll waits for cond, checking every 20 ms: the agent is another process,
// so there is no channel to wait on.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// segments lists the recordings directory: name -> size.
func segments(t *testing.T, dir string) map[string]int64 {
	entries, _ := os.ReadDir(dir)
	m := map[string]int64{}
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			m[e.Name()] = info.Size()
		}
	}
	return m
}

func isOpen(name string) bool { return !strings.Contains(name, "_") }

// waitForFragment waits until an open segment holds a fragment, and
// returns its name.
func waitForFragment(t *testing.T, dir string) string {
	t.Helper()
	var open string
	poll(t, "the first recorded fragment", func() bool {
		for name, size := range segments(t, dir) {
			if isOpen(name) && size > 2000 {
				open = name
				return true
			}
		}
		return false
	})
	return open
}

// waitForNoOpenSegmentBefore waits until the segment open at the kill has
// been repaired (sealed under another name, or removed).
func waitForNoOpenSegmentBefore(t *testing.T, dir, open string) {
	t.Helper()
	poll(t, "repair of "+open, func() bool {
		_, still := segments(t, dir)[open]
		return !still
	})
}

func truncateOpenSegment(t *testing.T, dir string, rng *rand.Rand) {
	for name, size := range segments(t, dir) {
		if isOpen(name) && size > 0 {
			cut := rng.Int64N(size)
			t.Logf("truncating %s from %d to %d bytes", name, size, cut)
			if err := os.Truncate(filepath.Join(dir, name), cut); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// lastEndBefore is the end of the recording that covered killedAt.
func lastEndBefore(t *testing.T, dir string, killedAt time.Time) time.Time {
	t.Helper()
	var end time.Time
	for name := range segments(t, dir) {
		seg, err := storage.ParseSegmentName(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if seg.Start.Before(killedAt) && seg.End().After(end) {
			end = seg.End()
		}
	}
	return end
}

// checkAllSegments checks every sealed segment is whole and decodes.
func checkAllSegments(t *testing.T, dir string) {
	t.Helper()
	n := 0
	for name, size := range segments(t, dir) {
		if isOpen(name) {
			continue // being written; only its fsynced prefix is promised
		}
		path := filepath.Join(dir, name)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		l, err := mp4scan.Scan(f, size)
		samples := 0
		for _, fr := range l.Fragments {
			s, err := mp4scan.ReadSamples(f, fr)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			samples += len(s)
		}
		f.Close()
		if err != nil || l.ValidEnd != size || l.Torn != "" {
			t.Fatalf("%s: not whole: %+v %v", name, l, err)
		}
		if got := probeFrames(t, path); got != samples {
			t.Fatalf("%s: ffprobe decoded %d frames of %d", name, got, samples)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no segments")
	}
	t.Logf("%d segments whole and decodable", n)
}

// probeFrames decodes every frame with ffprobe; any decoder complaint fails.
func probeFrames(t *testing.T, path string) int {
	t.Helper()
	cmd := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr.String())
	}
	var res struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) != 1 || res.Streams[0].Codec != "h264" {
		t.Fatalf("ffprobe %s: %s", path, out)
	}
	n, _ := strconv.Atoi(res.Streams[0].Frames)
	return n
}

// exportOverQUIC pairs a viewer and exports 2 s of the recording with
// `camagent view --from --to -o clip.mp4`.
func exportOverQUIC(t *testing.T, bin string, flags []string, dir, recs string) {
	t.Helper()
	view := filepath.Join(dir, "view")
	uri, err := exec.Command(bin, append([]string{"pair", "--uri-only"}, flags...)...).Output()
	if err != nil {
		t.Fatalf("pair: %v", err)
	}
	if out, err := exec.Command(bin, "join", strings.TrimSpace(string(uri)), "--state-dir", view).CombinedOutput(); err != nil {
		t.Fatalf("join: %v\n%s", err, out)
	}
	// The clip comes from inside one sealed segment of at least 2.5 s: a
	// segment a kill cut short would put the kill's lost video inside
	// the range (the earliest one was, once, under load: 42 frames).
	var first time.Time
	for name := range segments(t, recs) {
		seg, err := storage.ParseSegmentName(name)
		if err == nil && !seg.Open && seg.Duration >= 2500*time.Millisecond && (first.IsZero() || seg.Start.Before(first)) {
			first = seg.Start
		}
	}
	if first.IsZero() {
		t.Fatalf("no sealed segment of 2.5 s in %v", segments(t, recs))
	}
	from, to := first.Add(500*time.Millisecond), first.Add(2500*time.Millisecond)
	clip := filepath.Join(dir, "clip.mp4")
	out, err := exec.Command(bin, "view", "powerloss", "--state-dir", view, "-o", clip,
		"--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano)).CombinedOutput()
	if err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if n := probeFrames(t, clip); n < 45 || n > 90 {
		t.Fatalf("2 s clip has %d frames", n)
	}
	t.Logf("exported over QUIC: %s", strings.TrimSpace(string(out)))
}

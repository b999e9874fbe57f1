package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkAgentProcess720p30 runs the real binary as a camera (test
// source, 1280x720 at 30 fps, software H.264) with one paired viewer for
// 10 s, and reports the agent process's resident memory (now and peak) and
// CPU share. Target: RSS < 40 MB.
func BenchmarkAgentProcess720p30(b *testing.B) {
	if testing.Short() {
		b.Skip("runs a 10 s session")
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "camagent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for b.Loop() {
		rss, hwm, cpu, frames := runAgentSession(b, bin, dir, 10*time.Second)
		b.ReportMetric(rss, "rss-MB")
		b.ReportMetric(hwm, "peak-rss-MB")
		b.ReportMetric(cpu, "cpu-%")
		b.ReportMetric(float64(frames), "frames")
	}
}

func runAgentSession(b *testing.B, bin, dir string, d time.Duration) (rss, hwm, cpu float64, frames int) {
	camState, viewState := filepath.Join(dir, "cam"), filepath.Join(dir, "view")
	os.RemoveAll(camState)
	os.RemoveAll(viewState)
	flags := []string{"--config", "/dev/null", "--name", "bench", "--state-dir", camState,
		"--listen", "127.0.0.1:44499", "--capture.device", "test", "--log.level", "warn",
		"--capture.width", "1280", "--capture.height", "720", "--capture.fps", "30"}
	agent := exec.Command(bin, append([]string{"agent"}, flags...)...)
	if err := agent.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { agent.Process.Kill(); agent.Wait() }()
	// The agent makes its key on start; pair once it exists.
	waitFor(b, filepath.Join(camState, "key.pem"))
	uri, err := exec.Command(bin, append([]string{"pair", "--uri-only"}, flags...)...).Output()
	if err != nil {
		b.Fatalf("pair: %v", err)
	}
	if out, err := exec.Command(bin, "join", strings.TrimSpace(string(uri)), "--state-dir", viewState).CombinedOutput(); err != nil {
		b.Fatalf("join: %v\n%s", err, out)
	}
	cpu0 := cpuTicks(b, agent.Process.Pid)
	t0 := time.Now()
	summary := filepath.Join(dir, "summary.json")
	view := exec.Command(bin, "view", "bench", "--state-dir", viewState, "--duration", d.String(), "-q", "--summary", summary)
	if out, err := view.CombinedOutput(); err != nil {
		b.Fatalf("view: %v\n%s", err, out)
	}
	elapsed := time.Since(t0).Seconds()
	cpu = float64(cpuTicks(b, agent.Process.Pid)-cpu0) / clockTicks / elapsed * 100
	rss, hwm = memKB(b, agent.Process.Pid, "VmRSS:")/1024, memKB(b, agent.Process.Pid, "VmHWM:")/1024
	js, _ := os.ReadFile(summary)
	fmt.Sscanf(string(js[bytes.Index(js, []byte(`"frames":`))+9:]), "%d", &frames)
	return rss, hwm, cpu, frames
}

// clockTicks is USER_HZ, 100 on every Linux architecture camagent targets.
const clockTicks = 100

func waitFor(b *testing.B, path string) {
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s did not appear", path)
}

func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return utime + stime
}

func memKB(b *testing.B, pid int, key string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return v
		}
	}
	b.Fatalf("%s not in /proc/%d/status", key, pid)
	return 0
}

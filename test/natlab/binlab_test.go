//go:build linux

package natlab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/testtier"
)

// requireLab skips t unless a lab can be built here: run by its make
// target (testtier.System: the labs take minutes and `make test` runs
// each target once, not again inside go test ./...), not under -short,
// as root, with ip and nft (and the other tools given) installed, and
// network namespaces allowed.
func requireLab(t *testing.T, why string, tools ...string) {
	t.Helper()
	testtier.System(t, "make netlab-relay, netlab-direct or netlab-matrix")
	if testing.Short() {
		t.Skipf("%s: not under -short", why)
	}
	if os.Geteuid() != 0 {
		t.Skipf("%s needs root (network namespaces, nftables)", why)
	}
	for _, tool := range append([]string{"ip", "nft"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s: %s not installed (scripts/deps.sh netlab)", why, tool)
		}
	}
	probe := fmt.Sprintf("nlprobe%d", os.Getpid())
	if err := run("ip", "netns", "add", probe); err != nil {
		t.Skipf("%s: cannot create network namespaces here: %v", why, err)
	}
	run("ip", "netns", "del", probe)
}

// The lab of `make netlab-relay` and `make netlab-direct` (the shell labs
// of test/netlab before it):
//
//	wan (relay 192.0.2.1:443; 203.0.113.1, 198.51.100.1)
//	 |- camr 203.0.113.2  | 192.168.1.1 -- cam  192.168.1.2  (home NAT)
//	 '- viewr 198.51.100.2 | 10.0.0.1    -- view 10.0.0.2     (carrier NAT)
//
// Both routers masquerade and drop unsolicited inbound packets
// (PortRestricted). Every role is the built binary bin/camagent run as a
// process in its namespace, as a user runs it; logs and state go to
// out/NAME/, the video to out/NAME.mp4, the summary line to
// out/NAME.summary (the Makefile prints it last).
type binLab struct {
	*Lab
	t         *testing.T
	name      string
	bin       string
	work, out string
	relay     *Process
	relayURL  string
}

// relayMetrics is where the relay serves its metrics, inside wan.
const relayMetrics = "127.0.0.1:9464"

func newBinLab(t *testing.T, name string) *binLab {
	t.Helper()
	requireLab(t, name, "ffprobe")
	root := moduleRoot(t)
	bin := os.Getenv("CAMAGENT_BIN")
	if bin == "" {
		bin = filepath.Join(root, "bin", "camagent")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("%s: %s not built (make %s builds it first)", name, bin, name)
	}
	b := &binLab{t: t, name: name, bin: bin, work: filepath.Join(root, "out", name), out: filepath.Join(root, "out", name+".mp4")}
	os.Remove(b.work + ".summary")
	if err := os.RemoveAll(b.work); err != nil {
		t.Fatal(err)
	}
	os.Remove(b.out)
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		t.Fatal(err)
	}
	lab, err := New(PortRestricted, PortRestricted, false)
	if err != nil {
		t.Fatal(err)
	}
	b.Lab = lab
	t.Cleanup(func() { lab.Close() }) // after the processes' own cleanups
	// The token goes to relay and camera in a file, as on a real install:
	// a --token flag is visible in ps (and the CLI warns about it).
	token := fmt.Sprintf("netlab-%d", time.Now().UnixNano())
	if err := os.WriteFile(b.path("relay.token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// checkNAT fails the test if the camera could be reached from the
// internet without its NAT.
func (b *binLab) checkNAT() {
	b.t.Helper()
	if b.Reachable(b.WAN, netip.AddrPortFrom(b.CameraAddr, CameraPort)) {
		b.t.Fatalf("%s: camera reachable without NAT: lab broken", b.name)
	}
}

// start runs bin/camagent with args in ns; Cleanup kills it.
func (b *binLab) start(ns, stdout, stderr string, args ...string) *Process {
	b.t.Helper()
	p, err := StartProcess(ns, stdout, stderr, b.bin, args...)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(p.Kill)
	return p
}

// run runs bin/camagent with args in ns to the end.
func (b *binLab) run(ns string, args ...string) string {
	b.t.Helper()
	out, err := RunIn(ns, b.bin, args...)
	if err != nil {
		b.t.Fatalf("%s: %v", b.name, err)
	}
	return out
}

func (b *binLab) path(name string) string { return filepath.Join(b.work, name) }

// startRelay starts `camagent relay` in wan (same key every time: its
// state directory) and waits for the URL it prints.
func (b *binLab) startRelay() {
	b.t.Helper()
	os.Remove(b.path("relay.url"))
	b.relay = b.start(b.WAN, b.path("relay.url"), b.path("relay.log"), "relay",
		"--listen", fmt.Sprintf("%s:%d", RelayAddr, RelayPort), "--state-dir", b.path("relay-state"),
		"--token-file", b.path("relay.token"), "--metrics", relayMetrics,
		// The lab's "internet" is documentation ranges, which the relay's
		// target policy refuses unless told otherwise.
		"--allow-target", labTargets[0].String(), "--allow-target", labTargets[1].String())
	url := ""
	if !waitFor(5*time.Second, 50*time.Millisecond, func() bool {
		out, _ := os.ReadFile(b.path("relay.url"))
		for _, line := range strings.Split(string(out), "\n") {
			if u, ok := strings.CutPrefix(line, "relay url: "); ok {
				url = u
				return true
			}
		}
		return false
	}) {
		b.fatalWithLogs("relay did not start", "relay.log")
	}
	b.relayURL = url
}

// relayFromCamera is the relay's count of bytes it forwarded from
// cameras (0 if it cannot be read).
func (b *binLab) relayFromCamera() uint64 {
	v, err := Metric(b.WAN, relayMetrics, `camagent_relay_bytes_total{direction="from_camera"}`)
	if err != nil {
		b.t.Logf("relay metrics: %v", err)
	}
	return uint64(v)
}

// cameraFlags are the agent's flags: the synthetic test source at 640x360,
// 30 fps, H.264 with a key frame a second, registered with the relay.
func (b *binLab) cameraFlags(extra ...string) []string {
	return append([]string{"--config", "/dev/null", "--name", "porch", "--state-dir", b.path("cam-state"),
		"--listen", fmt.Sprintf("%s:%d", b.CameraAddr, CameraPort),
		"--capture.device", "test", "--capture.width", "640", "--capture.height", "360", "--capture.fps", "30",
		"--encode.codec", "h264", "--encode.keyframe-interval", "30",
		"--relay.urls", b.relayURL, "--relay.token-file", b.path("relay.token")}, extra...)
}

// logHas reports whether log file name has a line containing s, or (if
// prefix) starting with it.
func (b *binLab) logHas(name, s string, prefix bool) bool {
	data, _ := os.ReadFile(b.path(name))
	for _, line := range strings.Split(string(data), "\n") {
		if prefix && strings.HasPrefix(line, s) || !prefix && strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// fatalWithLogs ends the test with msg and the ends of the named logs.
func (b *binLab) fatalWithLogs(msg string, logs ...string) {
	b.t.Helper()
	b.tailLogs(logs...)
	b.writeSummary(b.name + ": FAIL: " + msg)
	b.t.Fatalf("%s: %s", b.name, msg)
}

func (b *binLab) tailLogs(logs ...string) {
	for _, name := range logs {
		data, _ := os.ReadFile(b.path(name))
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		b.t.Logf("==> %s <==\n%s", b.path(name), strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
}

// writeSummary writes out/NAME.summary, the line the Makefile prints last.
func (b *binLab) writeSummary(line string) {
	if err := os.WriteFile(b.work+".summary", []byte(line+"\n"), 0o644); err != nil {
		b.t.Error(err)
	}
}

// viewerSummary reads `camagent view --summary`'s JSON, numbers as
// written.
func viewerSummary(path string) (map[string]any, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	m := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return m, strings.TrimSpace(string(data)), d.Decode(&m)
}

// num is field k of a viewer summary ("" if absent).
func num(m map[string]any, k string) json.Number {
	n, _ := m[k].(json.Number)
	return n
}

func waitFor(timeout, every time.Duration, cond func() bool) bool {
	for end := time.Now().Add(timeout); ; time.Sleep(every) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

func msSince(t time.Time) int64 { return time.Since(t).Milliseconds() }

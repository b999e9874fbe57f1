//go:build linux

package natlab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
)

// hold is how long each pair streams after connecting: long enough for a
// failed first round and its retry, and for the relay share after the
// switch to be measured over several seconds of media (the packets in
// flight on the relay at the switch, a few kB when a key frame is
// crossing, are then well under 1%).
const hold = 7 * time.Second

// TestRelayProcess is not a test: it is the relay's process of a lab
// (StartRelay), this test binary re-executed in the wan namespace. A
// relaytest relay on RelayAddr:RelayPort, registrations bound on
// RelayAddr; its first line on stdout is "ready URL TOKEN", then it
// answers each line on stdin with "from-camera to-camera" byte counts
// until stdin closes.
func TestRelayProcess(t *testing.T) {
	if os.Getenv(relayChildEnv) == "" {
		t.Skip("the relay's process of a lab (StartRelay)")
	}
	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(RelayAddr, RelayPort)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := relayserver.Config{Logger: debugLogger("relay"),
		// The lab's "internet" is documentation ranges, which the relay's
		// target policy refuses unless told otherwise.
		AllowTargets: labTargets}
	if os.Getenv("NATLAB_TRACE") != "" {
		cfg.Tap = func(toCamera bool, b []byte) {
			fmt.Fprintf(os.Stderr, "relay %s toCamera=%v %d bytes\n", time.Now().Format("15:04:05.000"), toCamera, len(b))
		}
	}
	r := relaytest.StartOn(t, pc, cfg)
	fmt.Printf("ready %s %s\n", r.URL, r.Token)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		m := r.Server.Metrics()
		fmt.Printf("%d %d\n", m.BytesFromCamera.Load(), m.BytesToCamera.Load())
	}
}

// TestNATMatrix runs every camera/viewer NAT pair in a fresh lab and
// writes out/nat-matrix.json and docs/nat-matrix.md (make netlab-matrix).
// It needs root, ip and nft; NATLAB_PAIRS=cam/viewer,... runs a subset
// (and then writes nothing), NATLAB_DEBUG=1 logs the agent, viewer and
// relay, NATLAB_TRACE=1 every datagram the relay forwards, every path
// event and the byte counters every 100 ms.
func TestNATMatrix(t *testing.T) {
	requireLab(t, "the NAT matrix (make netlab-matrix, minutes)")
	var pairs []Pair
	for _, c := range Kinds {
		for _, v := range Kinds {
			pairs = append(pairs, Pair{Camera: c, Viewer: v})
		}
	}
	pairs = append(pairs, Pair{Hairpin: true})
	subset := os.Getenv("NATLAB_PAIRS")
	if subset != "" {
		pairs = slices.DeleteFunc(pairs, func(p Pair) bool {
			name := string(p.Camera) + "/" + string(p.Viewer)
			if p.Hairpin {
				name = "hairpin"
			}
			return !slices.Contains(strings.Split(subset, ","), name)
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	var results []Result
	for _, p := range pairs {
		t.Run(strings.NewReplacer(" / ", "-", " ", "-").Replace(p.String()), func(t *testing.T) {
			r := RunPair(ctx, p, hold)
			results = append(results, r)
			t.Logf("%s: %s ttd=%.0fms relay-share=%.2f%% lost-at-switch=%d lost=%d skipped=%d frames=%d max-gap=%.0fms rounds=%d probes=%d events=%v",
				p, r.Path, r.TimeToDirectMS, r.RelayShareAfterSwitchPct, r.FramesLostAtSwitch, r.FramesLost, r.FramesSkippedBySource, r.Frames,
				r.MaxGapMS, r.Rounds, r.Probes, r.Events)
			for _, f := range r.Failures {
				t.Error(f)
			}
		})
	}
	elapsed := time.Since(start)
	summary := Summarize(results, elapsed)
	if subset == "" {
		root := moduleRoot(t)
		m := Matrix{Generated: time.Now().UTC().Format(time.RFC3339), Kernel: kernel(), CPUs: runtime.NumCPU(),
			RunSeconds: elapsed.Seconds(), HoldSeconds: hold.Seconds(), Relay: "p2p/relayserver (MASQUE connect-udp-listen)", Pairs: results, Summary: summary}
		js, _ := json.MarshalIndent(m, "", "  ")
		if err := os.MkdirAll(filepath.Join(root, "out"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "out", "nat-matrix.json"), append(js, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "docs", "nat-matrix.md"), []byte(Markdown(m)), 0o644); err != nil {
			t.Fatal(err)
		}
		// The Makefile prints it after go test's own last lines.
		if err := os.WriteFile(filepath.Join(root, "out", "nat-matrix.summary"), []byte(summary+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println(summary)
}

// moduleRoot is the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func kernel() string {
	out, _ := exec.Command("uname", "-r").Output()
	return strings.TrimSpace(string(out))
}

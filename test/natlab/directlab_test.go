//go:build linux

package natlab

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/ffprobe"
)

// directLabSummary is the last line of `make netlab-direct`.
type directLabSummary struct {
	Result                string      `json:"result"`
	Output                string      `json:"output"`
	Codec                 string      `json:"codec"`
	Width                 int         `json:"width"`
	Height                int         `json:"height"`
	Frames                int         `json:"frames"`
	TimeToDirectMS        json.Number `json:"time_to_direct_ms"`
	RelayShareWhileDirect json.Number `json:"relay_share_while_direct"`
	BytesDirect           json.Number `json:"bytes_direct"`
	BytesRelay            json.Number `json:"bytes_relay"`
	FallbackMS            int64       `json:"fallback_ms"`
	CameraReflexive       string      `json:"camera_reflexive"`
}

// TestDirectLab is `make netlab-direct`: the lab of TestRelayLab (both
// NATs endpoint-independent mapping with port-restricted filtering), with
// the "internet" routing between the NATs. The viewer knows only the
// relay and connects through it (--via relay); NAT traversal must move
// the live connection to the direct path. Then the direct path is cut in
// the internet and the viewer must fall back to the relay without losing
// the stream. 10 s go to out/netlab-direct.mp4, checked by ffprobe; the
// summary line is JSON with the time to direct, the relay's byte share
// while direct and the fallback time.
func TestDirectLab(t *testing.T) {
	b := newBinLab(t, "netlab-direct")
	b.checkNAT()
	b.startRelay()
	camFlags := b.cameraFlags("--log.level", "debug")
	b.start(b.Camera, "", b.path("agent.log"), append([]string{"agent"}, camFlags...)...)
	var public, observed string
	waitFor(20*time.Second, 100*time.Millisecond, func() bool {
		public, observed = b.registration()
		return public != "" && b.logHas("agent.log", "msg=streaming", false)
	})
	if public == "" {
		b.fatalWithLogs("camera did not register", "agent.log")
	}
	t.Logf("camera registered at %s; the relay sees its QUIC socket at %s", public, observed)
	if !strings.HasPrefix(observed, b.CameraWAN.String()+":") {
		b.fatalWithLogs(fmt.Sprintf("relay observed %s, not the home NAT", observed))
	}

	// The default offer: the camera's LAN address, its public address at
	// the relay (raddr, from the agent's public.json) and the relay URL
	// with the camera's locator secret; join finds the camera from it.
	uri := strings.TrimSpace(b.run(b.Camera, append([]string{"pair"}, append(camFlags, "--uri-only")...)...))
	if !strings.Contains(uri, "raddr="+public) {
		b.fatalWithLogs(fmt.Sprintf("offer lacks the public address %s: %s", public, uri))
	}
	t.Log(strings.TrimSpace(b.run(b.Viewer, "join", uri, "--state-dir", b.path("phone-state"), "--as", "phone")))

	// --via relay: the camera's LAN address is no use from the carrier
	// NAT; the viewer starts on the relay and must find the direct path
	// itself.
	view := b.start(b.Viewer, "", b.path("view.log"), "view", "porch", "--state-dir", b.path("phone-state"), "--via", "relay",
		"-q", "--log-level", "debug", "-o", b.out, "--duration", "10s", "--summary", b.path("summary.json"))

	// Wait for the switch, let what was in flight through the relay
	// arrive, then count what the relay forwards from the camera while
	// direct.
	if !waitFor(5*time.Second, 50*time.Millisecond, func() bool { return b.logHas("view.log", "path: direct", true) }) {
		b.fatalWithLogs("viewer never went direct", "view.log", "agent.log")
	}
	time.Sleep(500 * time.Millisecond)
	relayDirectStart, tDirectStart := b.relayFromCamera(), time.Now()
	time.Sleep(4 * time.Second)
	relayDirectEnd, tDirectEnd := b.relayFromCamera(), time.Now()

	// Cut the direct path in the internet (both directions); the relay's
	// address stays reachable.
	if err := b.Cut(b.CameraWAN, b.ViewerWAN); err != nil {
		t.Fatal(err)
	}
	tCut := time.Now()
	if !waitFor(2*time.Second, 20*time.Millisecond, func() bool { return b.logHas("view.log", "back on the relay", false) }) {
		b.fatalWithLogs("no fallback to the relay", "view.log")
	}
	fallbackMS := msSince(tCut)

	if err := view.Wait(30 * time.Second); err != nil {
		b.fatalWithLogs(fmt.Sprintf("viewer failed: %v", err), "view.log")
	}
	p, err := ffprobe.Probe(b.out)
	if err != nil {
		b.fatalWithLogs(err.Error(), "view.log")
	}
	stream := fmt.Sprintf("%s,%d,%d,%d", p.Codec, p.Width, p.Height, p.Frames)
	sum, raw, err := viewerSummary(b.path("summary.json"))
	if err != nil {
		b.fatalWithLogs("viewer summary: "+err.Error(), "view.log")
	}
	ttd, kbps, fallbacks := num(sum, "time_to_direct_ms"), num(sum, "kbps"), num(sum, "fallbacks_to_relay")
	bytesDirect, bytesRelay := num(sum, "bytes_direct"), num(sum, "bytes_relay")
	// The relay's share while direct: what it forwarded from the camera
	// in 4 s of the direct phase, against the stream's bitrate over the
	// same time.
	relayed := float64(relayDirectEnd - relayDirectStart)
	k, _ := kbps.Float64()
	media := k * 1000 / 8 * tDirectEnd.Sub(tDirectStart).Seconds()
	share := relayed / (relayed + media)
	t.Logf("ffprobe: %s; viewer: %s; relay bytes while direct: %.0f", stream, raw, relayed)

	var fails []string
	fail := func(format string, a ...any) { fails = append(fails, fmt.Sprintf(format, a...)) }
	if p.Codec != "h264" || p.Width != 640 || p.Height != 360 {
		fail("wrong stream %s", stream)
	}
	if p.Frames < 250 {
		fail("only %d frames", p.Frames)
	}
	if ttd == "" {
		fail("no time to direct in the summary")
	} else if v, err := ttd.Float64(); err != nil || v >= 5000 {
		fail("direct after %s ms, limit 5 s", ttd)
	}
	if !(share <= 0.01) {
		fail("relay carried %.4f of the stream while direct, limit 0.01", share)
	}
	// 4.5 s of direct phase at the test pattern's ~130 kbit/s is ~70 kB.
	if n, _ := bytesDirect.Int64(); n <= 40000 {
		fail("only %s bytes on the direct path", bytesDirect)
	}
	if n, _ := fallbacks.Int64(); n < 1 {
		fail("no fallback counted")
	}
	if fallbackMS >= 1500 {
		fail("fell back after %d ms, limit 1.5 s", fallbackMS)
	}
	if sum["path"] != "relay" {
		fail("viewer did not end on the relay")
	}
	if len(fails) > 0 {
		b.fatalWithLogs(strings.Join(fails, "; "), "agent.log", "view.log")
	}
	line, err := json.Marshal(directLabSummary{Result: "pass", Output: b.out, Codec: p.Codec, Width: p.Width, Height: p.Height, Frames: p.Frames,
		TimeToDirectMS: ttd, RelayShareWhileDirect: json.Number(fmt.Sprintf("%.4f", share)), BytesDirect: bytesDirect, BytesRelay: bytesRelay,
		FallbackMS: fallbackMS, CameraReflexive: observed})
	if err != nil {
		b.fatalWithLogs("summary: " + err.Error())
	}
	b.writeSummary(string(line))
}

// registration is the camera's public address at the relay and the
// address the relay saw its QUIC socket at, from the agent's last
// "registered with relay" log line.
func (b *binLab) registration() (public, observed string) {
	data, _ := os.ReadFile(b.path("agent.log"))
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, `msg="registered with relay"`) {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "public="); ok {
				public = v
			} else if v, ok := strings.CutPrefix(f, "observed="); ok {
				observed = v
			}
		}
	}
	return public, observed
}

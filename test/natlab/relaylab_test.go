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

// relayLabSummary is the last line of `make netlab-relay`.
type relayLabSummary struct {
	Result           string      `json:"result"`
	Output           string      `json:"output"`
	Codec            string      `json:"codec"`
	Width            int         `json:"width"`
	Height           int         `json:"height"`
	Frames           int         `json:"frames"`
	BytesViaRelay    uint64      `json:"bytes_via_relay"`
	Reconnects       json.Number `json:"reconnects"`
	MaxGapS          json.Number `json:"max_gap_s"`
	PublicBefore     string      `json:"public_before"`
	PublicAfter      string      `json:"public_after"`
	PairMS           int64       `json:"pair_ms"`
	PairViaLocatorMS int64       `json:"pair_via_locator_ms"`
}

// TestRelayLab is `make netlab-relay`: a camera behind a home NAT reached
// by a viewer behind a carrier NAT through the MASQUE relay on the
// "internet", which does not route between the NATs (everything ends at
// the relay). The viewer pairs (with the offer `camagent pair` prints,
// and once more with only the camera's LAN address, through the relay's
// locator) and records 10 s to out/netlab-relay.mp4 through the relay;
// the relay is killed and restarted mid-stream and the viewer must resume
// within 5 s without re-pairing. ffprobe checks the file; the summary
// line is JSON.
func TestRelayLab(t *testing.T) {
	b := newBinLab(t, "netlab-relay")
	if err := b.Forward(false); err != nil {
		t.Fatal(err)
	}
	b.checkNAT()
	b.startRelay()
	t.Logf("relay: %s", b.relayURL)

	camFlags := b.cameraFlags()
	b.start(b.Camera, "", b.path("agent.log"), append([]string{"agent"}, camFlags...)...)
	// The agent keeps its current public address at each relay in
	// public.json (what `camagent pair` puts in offers); nothing here
	// reads its log but for "streaming".
	public := ""
	waitFor(20*time.Second, 100*time.Millisecond, func() bool {
		public = b.cameraPublic()
		return public != "" && b.logHas("agent.log", "msg=streaming", false)
	})
	if public == "" {
		b.fatalWithLogs("camera did not register", "agent.log")
	}
	t.Logf("camera registered at %s (behind %s's NAT)", public, b.CameraWAN)

	// Pair as a user would: the default offer lists the camera's LAN
	// address, its public address at the relay (raddr) and the relay URL
	// with the camera's locator secret.
	uri := strings.TrimSpace(b.run(b.Camera, append([]string{"pair"}, append(camFlags, "--uri-only")...)...))
	if !strings.Contains(uri, "raddr="+public) {
		b.fatalWithLogs(fmt.Sprintf("offer lacks the public address %s: %s", public, uri))
	}
	t0 := time.Now()
	t.Log(strings.TrimSpace(b.run(b.Viewer, "join", uri, "--state-dir", b.path("phone-state"), "--as", "phone")))
	pairMS := msSince(t0)
	// A second viewer pairs from an offer whose only address is the LAN
	// one, unreachable from the carrier NAT (as with a stale public
	// address): join must locate the camera through the relay.
	uri2 := strings.TrimSpace(b.run(b.Camera, append([]string{"pair"}, append(camFlags, "--addr", fmt.Sprintf("%s:%d", b.CameraAddr, CameraPort), "--uri-only")...)...))
	if strings.Contains(uri2, "raddr=") {
		b.fatalWithLogs("--addr offer still lists relay addresses: " + uri2)
	}
	t0 = time.Now()
	t.Log(strings.TrimSpace(b.run(b.Viewer, "join", uri2, "--state-dir", b.path("tablet-state"), "--as", "tablet")))
	pairLocateMS := msSince(t0)
	t.Logf("paired in %d ms (offer with the public address), %d ms (through the relay's locator)", pairMS, pairLocateMS)

	view := b.start(b.Viewer, "", b.path("view.log"), "view", "porch", "--state-dir", b.path("phone-state"), "--resume", "-q",
		"-o", b.out, "--duration", "10s", "--summary", b.path("summary.json"))

	// Mid-stream: kill the relay outright, restart it (same key, new
	// registration ports).
	time.Sleep(4 * time.Second)
	bytesBefore := b.relayFromCamera()
	b.relay.Kill()
	t.Logf("relay killed after %d bytes from the camera; restarting", bytesBefore)
	time.Sleep(500 * time.Millisecond)
	b.startRelay()
	if err := view.Wait(30 * time.Second); err != nil {
		b.fatalWithLogs(fmt.Sprintf("viewer failed: %v", err), "view.log")
	}
	bytesAfter := b.relayFromCamera()
	newPublic := b.cameraPublic()

	p, err := ffprobe.Probe(b.out)
	if err != nil {
		b.fatalWithLogs(err.Error(), "view.log")
	}
	stream := fmt.Sprintf("%s,%d,%d,%d", p.Codec, p.Width, p.Height, p.Frames)
	sum, raw, err := viewerSummary(b.path("summary.json"))
	if err != nil {
		b.fatalWithLogs("viewer summary: "+err.Error(), "view.log")
	}
	t.Logf("ffprobe: %s; viewer: %s", stream, raw)
	reconnects, gap := num(sum, "reconnects"), num(sum, "max_gap_s")
	var fails []string
	fail := func(format string, a ...any) { fails = append(fails, fmt.Sprintf(format, a...)) }
	if p.Codec != "h264" || p.Width != 640 || p.Height != 360 {
		fail("wrong stream %s", stream)
	}
	if p.Frames < 250 {
		fail("only %d frames", p.Frames)
	}
	if n, _ := reconnects.Int64(); n < 1 {
		fail("viewer never reconnected: was the relay really in the path?")
	}
	if g, err := gap.Float64(); err != nil || g >= 5 {
		fail("viewer resumed after %ss, limit 5s", gap)
	}
	if newPublic == "" || newPublic == public {
		fail("camera did not re-register (still %s)", public)
	}
	if bytesAfter == 0 {
		fail("restarted relay forwarded nothing")
	}
	if len(fails) > 0 {
		b.fatalWithLogs(strings.Join(fails, "; "), "agent.log", "view.log")
	}
	line, err := json.Marshal(relayLabSummary{Result: "pass", Output: b.out, Codec: p.Codec, Width: p.Width, Height: p.Height, Frames: p.Frames,
		BytesViaRelay: bytesBefore + bytesAfter, Reconnects: reconnects, MaxGapS: gap, PublicBefore: public, PublicAfter: newPublic,
		PairMS: pairMS, PairViaLocatorMS: pairLocateMS})
	if err != nil {
		b.fatalWithLogs("summary: " + err.Error())
	}
	b.writeSummary(string(line))
}

// cameraPublic is the camera's public address at the relay from the
// agent's public.json ("" before it registered).
func (b *binLab) cameraPublic() string {
	data, err := os.ReadFile(b.path("cam-state/public.json"))
	if err != nil {
		return ""
	}
	var pub struct {
		Relays map[string]string `json:"relays"`
	}
	json.Unmarshal(data, &pub)
	for _, a := range pub.Relays {
		return a
	}
	return ""
}

//go:build linux

package natlab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/camagent/camagent/p2p/relayclient"
)

// relayChildEnv marks the test binary re-executed as the relay: it runs
// only TestRelayProcess, which serves while the variable is set.
const relayChildEnv = "NATLAB_RELAY_CHILD"

// Relay is camagent's MASQUE relay (p2p/relayserver, the code `camagent relay`
// runs) in the lab's wan namespace, in a process of its own: the relay
// opens a UDP socket for every registration (connect-udp-listen) from
// whatever goroutine serves the request, and only a process that lives
// entirely in the wan namespace opens them there. The process is this test
// binary re-executed (TestRelayProcess, a relaytest relay); the parent
// reads the relay's own byte counters over a pipe.
type Relay struct {
	// URL is what cameras register with (relay.urls) and viewers locate
	// cameras at (with the camera's locator added).
	URL   relayclient.RelayURL
	Token string

	cmd *exec.Cmd
	in  io.WriteCloser

	mu  sync.Mutex // one query at a time
	out *bufio.Reader
}

// RelayCounters are the relay's own byte counters (p2p/relayserver Metrics).
type RelayCounters struct {
	// FromCamera: UDP payload bytes the relay forwarded from registrations
	// to viewers; ToCamera the other way.
	FromCamera, ToCamera uint64
}

// StartRelay starts the relay on RelayAddr:RelayPort in namespace ns, with
// registration sockets on RelayAddr (its Proxy-Public-Address).
func StartRelay(ns string) (*Relay, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestRelayProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), relayChildEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &Relay{cmd: cmd, in: in, out: bufio.NewReader(out)}
	ready := make(chan error, 1)
	go func() {
		line, err := r.out.ReadString('\n')
		f := strings.Fields(line)
		if err == nil && (len(f) != 3 || f[0] != "ready") {
			err = fmt.Errorf("relay said %q", line)
		}
		if err == nil {
			r.URL, err = relayclient.ParseRelayURL(f[1])
			r.Token = f[2]
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(10 * time.Second):
		err = errors.New("relay not ready after 10 s")
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	return r, nil
}

// Counters asks the relay for its byte counters (a pipe round trip, well
// under a millisecond).
func (r *Relay) Counters() (RelayCounters, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := io.WriteString(r.in, "?\n"); err != nil {
		return RelayCounters{}, err
	}
	line, err := r.out.ReadString('\n')
	if err != nil {
		return RelayCounters{}, err
	}
	var c RelayCounters
	f := strings.Fields(line)
	if len(f) != 2 {
		return c, fmt.Errorf("relay counters %q", line)
	}
	c.FromCamera, _ = strconv.ParseUint(f[0], 10, 64)
	c.ToCamera, _ = strconv.ParseUint(f[1], 10, 64)
	return c, nil
}

// FromCamera is Counters().FromCamera, 0 if the relay cannot be asked.
func (r *Relay) FromCamera() uint64 {
	c, _ := r.Counters()
	return c.FromCamera
}

// Close ends the relay process (it exits when its stdin closes).
func (r *Relay) Close() error {
	r.in.Close()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		return <-done
	}
}

// labTargets are the lab's two "internet" prefixes (documentation ranges),
// which the relay must be told to forward to: its target policy refuses
// them by default.
var labTargets = []netip.Prefix{
	netip.MustParsePrefix(cameraSide.public + ".0/24"),
	netip.MustParsePrefix(viewerSide.public + ".0/24"),
}

//go:build linux

package natlab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Process is a program (the built bin/camagent, as a user runs it) in one
// of the lab's namespaces. `ip netns exec` execs it, so the process is
// the program itself: Kill hits it, not a wrapper.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess runs name with args in namespace ns, its standard output
// and error appended to the files stdout and stderr ("" for none).
func StartProcess(ns, stdout, stderr, name string, args ...string) (*Process, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	var files []*os.File
	for _, o := range []struct {
		path string
		w    *io.Writer
	}{{stdout, &cmd.Stdout}, {stderr, &cmd.Stderr}} {
		if o.path == "" {
			continue
		}
		f, err := os.OpenFile(o.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		*o.w = f
	}
	err := cmd.Start()
	for _, f := range files {
		f.Close() // the child has its own copy
	}
	if err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Wait waits up to timeout for the process to exit and returns how it
// did.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %v", p.cmd.Args[4], timeout)
	}
}

// Kill ends the process outright (SIGKILL, as a crash or a power cut
// would) and waits for it.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// RunIn runs name with args in namespace ns to the end and returns its
// standard output; its standard error comes back in the error.
func RunIn(ns, name string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Metric reads one sample (NAME{LABELS}, as exposed) from the Prometheus
// endpoint at addr (host:port) in namespace ns: the relay's own counters
// from inside the lab.
func Metric(ns, addr, name string) (float64, error) {
	var body []byte
	err := InNamespace(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		body, err = io.ReadAll(c)
		return err
	})
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, errors.New("no metric " + name + " at " + addr)
}

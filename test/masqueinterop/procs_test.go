package masqueinterop

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/masque-go"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/yosida95/uritemplate/v3"
)

const token = "interop-token"

// The relay is the real binary: CAMAGENT_BIN, or built once from the
// repository root (two levels up) into a temporary directory.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func camagentBin(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("CAMAGENT_BIN"); p != "" {
			binPath, binErr = filepath.Abs(p)
			return
		}
		dir, err := os.MkdirTemp("", "masqueinterop-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "camagent")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/camagent")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

// server is a proxy process: `camagent relay` or masque-go's proxy (this
// test binary run again in the proxy role).
type server struct {
	name string
	cmd  *exec.Cmd
	addr string // host:port of its HTTP/3 port
}

// startRelay runs `camagent relay` on loopback with the target override
// for 127.0.0.1 (where the echo listens) and extra flags.
func startRelay(tb testing.TB, extra ...string) *server {
	tb.Helper()
	args := append([]string{"relay", "--listen", "127.0.0.1:0", "--state-dir", tb.TempDir(), "--token", token,
		"--allow-target", "127.0.0.1/32", "--log-level", "warn"}, extra...)
	// MASQUEINTEROP_RELAY_ARGS adds flags, e.g. "--metrics 127.0.0.1:9465"
	// to profile or watch the relay during a benchmark.
	args = append(args, strings.Fields(os.Getenv("MASQUEINTEROP_RELAY_ARGS"))...)
	cmd := exec.Command(camagentBin(tb), args...)
	m := startServer(tb, cmd, regexp.MustCompile(`relay url: https://([0-9.]+:[0-9]+)/`))
	return &server{name: "camagent relay", cmd: cmd, addr: m[1]}
}

// startMasqueGoProxy runs masque-go's proxy in a child process.
func startMasqueGoProxy(tb testing.TB) *server {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMasqueGoProxyProcess$")
	cmd.Env = append(os.Environ(), "MASQUEINTEROP_ROLE=proxy")
	m := startServer(tb, cmd, regexp.MustCompile(`^ready ([0-9.]+:[0-9]+)$`))
	return &server{name: "masque-go proxy", cmd: cmd, addr: m[1]}
}

// startServer starts cmd and waits for a line on its stdout or stderr
// that matches re; the process ends with the test (stdin closed, then
// SIGINT).
func startServer(tb testing.TB, cmd *exec.Cmd, re *regexp.Regexp) []string {
	tb.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	// The server dies with this process even when the test is killed and
	// its cleanup never runs: an orphan would keep the ports, and any lock
	// file descriptor (flock) the test was started under, forever.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	found := make(chan []string, 1)
	var logMu sync.Mutex
	var logLines []string
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			logMu.Lock()
			logLines = append(logLines, sc.Text())
			logMu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m:
				default:
				}
			}
		}
	}()
	exited := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(exited) }()
	tb.Cleanup(func() {
		stdin.Close()
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case m := <-found:
		return m
	case <-exited:
	case <-time.After(30 * time.Second):
	}
	logMu.Lock()
	defer logMu.Unlock()
	tb.Fatalf("%s did not start:\n%s", cmd.Path, strings.Join(logLines, "\n"))
	return nil
}

// cpu is the process's user plus system time so far (proc(5) stat fields
// 14 and 15, in clock ticks of 10 ms).
func (s *server) cpu(tb testing.TB) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	ut, _ := strconv.ParseUint(f[14-3], 10, 64)
	st, _ := strconv.ParseUint(f[15-3], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}

// TestMasqueGoProxyProcess is masque-go's proxy (quic-go/masque-go's own
// example server, reduced) when run with MASQUEINTEROP_ROLE=proxy; it
// serves on loopback until stdin closes.
func TestMasqueGoProxyProcess(t *testing.T) {
	if os.Getenv("MASQUEINTEROP_ROLE") != "proxy" {
		t.Skip("the proxy role of the side-by-side benchmark")
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	template := uritemplate.MustNew("https://" + addr + "/.well-known/masque/udp/{target_host}/{target_port}/")
	var proxy masque.Proxy
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/masque/udp/", func(w http.ResponseWriter, r *http.Request) {
		req, err := masque.ParseProxyRequest(r, template)
		if err != nil {
			var perr *masque.ProxyRequestParseError
			if errors.As(err, &perr) {
				w.WriteHeader(perr.HTTPStatus)
				return
			}
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		proxy.Proxy(w, req)
	})
	srv := &http3.Server{
		Handler:         mux,
		EnableDatagrams: true,
		TLSConfig:       http3.ConfigureTLSConfig(selfSigned(t)),
		// The same transport settings as camagent's relay
		// (p2p/masque/profile.QUICConfig).
		QUICConfig: &quic.Config{EnableDatagrams: true, InitialPacketSize: 1400, MaxIdleTimeout: 10 * time.Second,
			KeepAlivePeriod: time.Second, MaxIncomingStreams: 64},
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		srv.Close()
		proxy.Close()
	}()
	fmt.Printf("ready %s\n", addr)
	srv.Serve(pc)
}

func selfSigned(t *testing.T) *tls.Config {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// dialThrough opens a masque-go CONNECT-UDP connection through the proxy
// at s.addr to target, with the relay's token; header changes the request
// before it is sent.
func dialThrough(tb testing.TB, ctx context.Context, s *server, target string, header func(http.Header)) *masque.Conn {
	tb.Helper()
	template := uritemplate.MustNew("https://" + s.addr + "/.well-known/masque/udp/{target_host}/{target_port}/")
	req, err := masque.NewRequest(ctx, template, target)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header().Set("Authorization", "Bearer "+token)
	if header != nil {
		header(req.Header())
	}
	tr := &masque.Transport{
		// Both proxies present self-signed certificates; the relay's pin
		// (fp=) is camagent's own scheme, not what this client checks.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{http3.NextProtoH3}},
		QUICConfig:      &quic.Config{EnableDatagrams: true, InitialPacketSize: 1400, MaxIdleTimeout: 10 * time.Second},
	}
	conn, resp, err := tr.Dial(req)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tb.Fatalf("CONNECT-UDP through %s: %v (status %d)", s.name, err, status)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// echoUDP answers every datagram with itself.
func echoUDP(tb testing.TB) string {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	tb.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return c.LocalAddr().String()
}

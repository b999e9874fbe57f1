// Package status serves the agent's local status endpoint: /healthz for
// supervisors and load balancers, /metrics in the Prometheus text format.
// It listens on loopback by default (config key status.listen): it shows
// figures, never video, but has no authentication.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/camagent/camagent/board"
	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/stream"
)

// Snapshot is the agent's state at one instant, taken once per request.
type Snapshot struct {
	Healthy        bool
	Status         string // the one-line STATUS= text
	FramesCaptured uint64 // access units encoded since start
	Hub            stream.HubStats
	Model          string       // device-tree model, "" when unknown
	Zones          []board.Zone // thermal zones
	Throttled      *board.Throttled
	MotionEvents   *uint64 // nil without a PIR sensor
	MotionActive   bool
	// NATMapping is how the camera's NAT maps, as measured through its
	// relays ("endpoint-independent", "endpoint-dependent", "unknown"):
	// endpoint-dependent means viewers behind port-restricted NATs go
	// direct only by port spraying (docs/nat-traversal.md §3.4).
	NATMapping string
	// ViewersRelayed are the live viewer connections running through a
	// relay; NAT the traversal counters since start.
	ViewersRelayed int
	NAT            NATStats
}

// NATStats count what the camera's NAT traversal did for its viewers.
type NATStats struct {
	PunchRequests uint64 // PUNCH_ME_NOW received
	Punches       uint64 // punch packets sent
	Refused       uint64 // requests refused by the anti-amplification rules
	Sprays        uint64 // port-spraying attempts acted on
	Holes         uint64 // fan-outs that found a hole
}

// Server is the running endpoint: Listen starts it, Close stops it, Done
// and Err say when and why it stopped.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	err  error // why Serve stopped (nil after Close); read after done

	closeOnce sync.Once
	closeErr  error
}

// Listen starts serving on addr (e.g. "127.0.0.1:9433"). snap is called
// for every request and must be safe for concurrent use.
func Listen(addr string, snap func() Snapshot, log *slog.Logger) (*Server, error) {
	log = logging.Discard(log)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("status endpoint: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{snap: snap},
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { healthz(w, snap()) })
	s := &Server{
		ln: ln,
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      10 * time.Second,
			MaxHeaderBytes:    8 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
			log.Warn("status endpoint stopped", "err", err)
		}
	}()
	log.Info("status endpoint", "addr", ln.Addr().String())
	return s, nil
}

// Addr is the address the endpoint listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Done is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is why the server stopped, once Done is closed: nil after Close,
// otherwise the error that ended Serve (its listener failed).
func (s *Server) Err() error {
	<-s.done
	return s.err
}

// Close stops the server, giving requests in flight a second to finish,
// and waits until it has stopped. It returns the shutdown error, or the
// error that had already stopped the server. It is safe to call more than
// once; later calls return what the first returned.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		<-s.done
		if err == nil {
			err = s.err
		}
		s.closeErr = err
	})
	return s.closeErr
}

// healthz answers 200 while the agent is healthy (capturing and serving),
// 503 otherwise, with the status as JSON either way.
func healthz(w http.ResponseWriter, s Snapshot) {
	body := struct {
		Healthy    bool   `json:"healthy"`
		Status     string `json:"status"`
		Viewers    int    `json:"viewers"`
		Frames     uint64 `json:"frames"`
		NATMapping string `json:"nat_mapping,omitempty"`
	}{s.Healthy, s.Status, s.Hub.Viewers, s.FramesCaptured, s.NATMapping}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !s.Healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(body)
}

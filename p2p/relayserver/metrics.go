package relayserver

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// Metrics are the relay's counters, exported in the Prometheus text format.
type Metrics struct {
	RegistrationsTotal  atomic.Uint64
	RegistrationsRefuse atomic.Uint64
	BytesToCamera       atomic.Uint64 // UDP payload bytes from viewers into tunnels
	BytesFromCamera     atomic.Uint64 // UDP payload bytes from tunnels to viewers
	DropFirewall        atomic.Uint64 // from peers without a context while the uncompressed context is closed
	DropRate            atomic.Uint64
	DropUnknownContext  atomic.Uint64
	DropTooLarge        atomic.Uint64
	DropMalformed       atomic.Uint64
	DropTarget          atomic.Uint64 // to or from an address the target policy refuses (target.go)
	ContextsRefused     atomic.Uint64 // client COMPRESSION_ASSIGNs refused by the target policy
	ConnectRefused      atomic.Uint64 // CONNECT-UDP requests refused by the target policy
	StreamErrors        atomic.Uint64 // tunnels aborted for malformed capsules
	LocateFound         atomic.Uint64
	LocateNotFound      atomic.Uint64
	LocateLimited       atomic.Uint64
	LocatorRefused      atomic.Uint64 // locators refused at registration: bound to another key
	STUNAnswered        atomic.Uint64 // Binding requests answered on the QUIC port
	STUNIgnored         atomic.Uint64 // non-QUIC packets that are not a well-formed Binding request
	STUNLimited         atomic.Uint64 // valid Binding requests over the relay-wide answer rate
	active              func() int
	sockets             func() int
}

func newMetrics() *Metrics { return &Metrics{} }

// WriteTo writes the metrics in the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	var n int64
	p := func(format string, args ...any) {
		k, _ := fmt.Fprintf(w, format+"\n", args...)
		n += int64(k)
	}
	active := 0
	if m.active != nil {
		active = m.active()
	}
	p("# TYPE camagent_relay_registrations gauge")
	p("camagent_relay_registrations %d", active)
	sockets := 0
	if m.sockets != nil {
		sockets = m.sockets()
	}
	p("# TYPE camagent_relay_connect_sockets gauge")
	p("camagent_relay_connect_sockets %d", sockets)
	p("# TYPE camagent_relay_registrations_total counter")
	p("camagent_relay_registrations_total{result=\"accepted\"} %d", m.RegistrationsTotal.Load())
	p("camagent_relay_registrations_total{result=\"refused\"} %d", m.RegistrationsRefuse.Load())
	p("# TYPE camagent_relay_bytes_total counter")
	p("camagent_relay_bytes_total{direction=\"to_camera\"} %d", m.BytesToCamera.Load())
	p("camagent_relay_bytes_total{direction=\"from_camera\"} %d", m.BytesFromCamera.Load())
	p("# TYPE camagent_relay_drops_total counter")
	for _, d := range []struct {
		reason string
		v      *atomic.Uint64
	}{{"firewall", &m.DropFirewall}, {"rate", &m.DropRate}, {"unknown_context", &m.DropUnknownContext},
		{"too_large", &m.DropTooLarge}, {"malformed", &m.DropMalformed}, {"target", &m.DropTarget}} {
		p("camagent_relay_drops_total{reason=%q} %d", d.reason, d.v.Load())
	}
	p("# TYPE camagent_relay_target_refused_total counter")
	p("camagent_relay_target_refused_total{kind=\"context\"} %d", m.ContextsRefused.Load())
	p("camagent_relay_target_refused_total{kind=\"connect\"} %d", m.ConnectRefused.Load())
	p("# TYPE camagent_relay_stream_errors_total counter")
	p("camagent_relay_stream_errors_total %d", m.StreamErrors.Load())
	p("# TYPE camagent_relay_locate_total counter")
	p("camagent_relay_locate_total{result=\"found\"} %d", m.LocateFound.Load())
	p("camagent_relay_locate_total{result=\"not_found\"} %d", m.LocateNotFound.Load())
	p("camagent_relay_locate_total{result=\"limited\"} %d", m.LocateLimited.Load())
	p("# TYPE camagent_relay_locators_refused_total counter")
	p("camagent_relay_locators_refused_total %d", m.LocatorRefused.Load())
	p("# TYPE camagent_relay_stun_total counter")
	p("camagent_relay_stun_total{result=\"answered\"} %d", m.STUNAnswered.Load())
	p("camagent_relay_stun_total{result=\"ignored\"} %d", m.STUNIgnored.Load())
	p("camagent_relay_stun_total{result=\"limited\"} %d", m.STUNLimited.Load())
	return n, nil
}

// Handler serves the metrics over plain HTTP (for a Prometheus scraper on
// a private address).
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.WriteTo(w)
	})
}

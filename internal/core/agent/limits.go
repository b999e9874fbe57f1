package agent

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/stream/wire"
)

// connLimits bounds the viewer connections (live video and recordings)
// the camera holds: per viewer key and camera-wide (config.LimitsConfig,
// issue 11 item 7). A paired viewer may watch; it may not take every
// connection slot, nor use many connections to multiply what the
// camera keeps per connection (NAT traversal state, recordings streams).
type connLimits struct {
	perKey, total int

	mu    sync.Mutex
	n     int
	byKey map[string]int
}

func newConnLimits(c config.LimitsConfig) *connLimits {
	d := config.DefaultLimits()
	if c.ConnsPerViewer <= 0 {
		c.ConnsPerViewer = d.ConnsPerViewer
	}
	if c.Conns <= 0 {
		c.Conns = d.Conns
	}
	return &connLimits{perKey: c.ConnsPerViewer, total: c.Conns, byKey: map[string]int{}}
}

// take admits one more connection of viewer key fp, or says which limit
// refuses it. release gives the slot back.
func (l *connLimits) take(fp string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.byKey[fp] >= l.perKey:
		return nil, fmt.Errorf("viewer key %s already has %d connections (limits.conns_per_viewer)", identity.ShortFingerprint(fp), l.perKey)
	case l.n >= l.total:
		return nil, fmt.Errorf("camera already has %d viewer connections (limits.conns)", l.total)
	}
	l.byKey[fp]++
	l.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.n--
			if l.byKey[fp]--; l.byKey[fp] <= 0 {
				delete(l.byKey, fp)
			}
		})
	}, nil
}

// counts are the connections held now, camera-wide and of key fp.
func (l *connLimits) counts(fp string) (total, ofKey int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.byKey[fp]
}

// admitViewerConn takes a connection slot for conn, a viewer connection of
// key fp, or closes conn with BUSY (docs/protocol.md §6) and the reason,
// which the viewer sees in its QUIC error.
func (a *Agent) admitViewerConn(conn *quic.Conn, fp string, log *slog.Logger) (release func(), ok bool) {
	release, err := a.limits.take(fp)
	if err != nil {
		log.Warn("viewer connection refused", "err", err)
		conn.CloseWithError(quic.ApplicationErrorCode(wire.ErrorBusy), err.Error())
		return nil, false
	}
	return release, true
}

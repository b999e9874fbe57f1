package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/camagent/camagent/internal/base/atomicfile"
	"github.com/camagent/camagent/p2p/relayclient"
)

// PublicFile, in the state directory, lists the public addresses the
// camera's relays gave it right now, so that `camagent pair` (another
// process) can print them in the offer. It is a hint only: a viewer that
// finds them stale locates the camera through the relays instead.
const PublicFile = "public.json"

// maxPublicFile bounds what ReadPublicAddrs reads: a handful of relays.
const maxPublicFile = 16 << 10

// publicState is PublicFile's contents.
type publicState struct {
	// Relays maps a relay's address to the camera's public address there.
	Relays  map[string]string `json:"relays"`
	Updated time.Time         `json:"updated"`
}

// publicAddrs keeps PublicFile in step with the Keeper's registrations.
type publicAddrs struct {
	path string
	mu   sync.Mutex
	cur  map[string]string
}

// newPublicAddrs starts with an empty file, so that addresses from a
// previous run are not offered while the agent has none.
func newPublicAddrs(stateDir string) (*publicAddrs, error) {
	p := &publicAddrs{path: filepath.Join(stateDir, PublicFile), cur: map[string]string{}}
	return p, p.write()
}

// relayChanged records relay's registration c, or its end (nil).
func (p *publicAddrs) relayChanged(relay string, c *relayclient.Conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c == nil || !c.PublicAddr().IsValid() {
		delete(p.cur, relay)
	} else {
		p.cur[relay] = c.PublicAddr().String()
	}
	return p.write()
}

func (p *publicAddrs) write() error {
	b, err := json.Marshal(publicState{Relays: p.cur, Updated: time.Now().UTC()})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p.path, append(b, '\n'), 0o644)
}

// ReadPublicAddrs returns the camera's current public addresses at its
// relays as the running agent last wrote them, sorted; none when the file
// does not exist (no relays, or no agent has run).
func ReadPublicAddrs(stateDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, PublicFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parsePublicAddrs(b)
}

// parsePublicAddrs checks every address, since they go into pairing offers.
func parsePublicAddrs(b []byte) ([]string, error) {
	if len(b) > maxPublicFile {
		return nil, fmt.Errorf("%s: longer than %d bytes", PublicFile, maxPublicFile)
	}
	var st publicState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", PublicFile, err)
	}
	var out []string
	for _, relay := range slices.Sorted(maps.Keys(st.Relays)) {
		ap, err := netip.ParseAddrPort(st.Relays[relay])
		if err != nil || ap.Port() == 0 || !ap.Addr().IsValid() || ap.Addr().IsUnspecified() {
			return nil, fmt.Errorf("%s: relay %q: bad public address %q", PublicFile, relay, st.Relays[relay])
		}
		out = append(out, ap.String())
	}
	return out, nil
}

//go:build unix

package statefile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRootUpdateKeepsDirOwner is issue 11 item 10: `sudo camagent viewers
// revoke` updates viewers.json in the agent's state directory; both the
// document and its lock file must stay the agent's, or the agent can no
// longer read the one or open the other.
func TestRootUpdateKeepsDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const uid, gid = 4321, 8765
	dir := t.TempDir()
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "viewers.json")
	f, err := Open[map[string]string](path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Update(func(m *map[string]string) error {
		*m = map[string]string{"phone": "revoked"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".lock"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: owner %d:%d, want the directory's %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
}

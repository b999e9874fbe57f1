//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRootKeepsDirOwner is issue 11 item 10: root (sudo camagent ...)
// writing into the service user's state directory leaves a file the
// service user owns; in a root-owned directory files stay root's.
func TestRootKeepsDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const uid, gid = 4321, 8765
	owned := t.TempDir()
	if err := os.Chown(owned, uid, gid); err != nil {
		t.Fatal(err)
	}
	rootDir := t.TempDir()
	for _, tt := range []struct {
		dir              string
		wantUID, wantGID uint32
	}{
		{owned, uid, gid},
		{rootDir, 0, 0},
	} {
		name := filepath.Join(tt.dir, "viewers.json")
		for range 2 { // a new file, then a replaced one
			if err := WriteFile(name, []byte("{}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != tt.wantUID || st.Gid != tt.wantGID || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: owner %d:%d mode %v, want %d:%d 0600", name, st.Uid, st.Gid, fi.Mode().Perm(), tt.wantUID, tt.wantGID)
			}
		}
	}
}

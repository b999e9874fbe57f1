//go:build unix

package atomicfile

import (
	"fmt"
	"os"
	"syscall"
)

// MatchDirOwner gives f, a file just created in dir, dir's owner and group
// when the process runs as root and dir belongs to someone else.
//
// A state directory belongs to the service user (systemd's StateDirectory=
// chowns only the directory itself, and only when its owner is wrong).
// `sudo camagent pair` or `sudo camagent viewers revoke` would otherwise
// leave root-owned 0600 files in it that the agent can no longer read or
// lock: it then refuses every viewer or fails at start (issue 11 item 10).
// Called before the file is renamed into place, so no reader ever sees it
// with the wrong owner. Other users cannot chown and need not: their files
// are theirs, and a directory they can write is theirs or shared.
func MatchDirOwner(f *os.File, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: stat %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (st.Uid == 0 && st.Gid == 0) {
		return nil
	}
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("atomicfile: chown %s to %s's owner %d:%d: %w", f.Name(), dir, st.Uid, st.Gid, err)
	}
	return nil
}

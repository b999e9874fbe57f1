//go:build unix

package statefile

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/camagent/camagent/internal/base/atomicfile"
)

// Lock blocks until it holds an exclusive flock on path (created if
// missing) and returns the function that releases it. Lock a dedicated
// file, never a document itself: atomicfile replaces the document's inode
// on every write, and a lock on the old inode excludes nobody.
func Lock(path string) (unlock func(), err error) {
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	// A lock file root creates (sudo camagent pair) must stay openable
	// by the service user who owns the directory.
	if err := atomicfile.MatchDirOwner(fh, filepath.Dir(path)); err != nil {
		fh.Close()
		return nil, err
	}
	for {
		err = syscall.Flock(int(fh.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		fh.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(fh.Fd()), syscall.LOCK_UN)
		fh.Close()
	}, nil
}

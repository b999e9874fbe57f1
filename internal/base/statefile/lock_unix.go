//go:build unix

package statefile

import (
	"os"
	"syscall"
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

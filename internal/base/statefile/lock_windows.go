//go:build windows

package statefile

import (
	"os"

	"golang.org/x/sys/windows"
)

// Lock blocks until it holds an exclusive lock on path (created if missing)
// and returns the function that releases it. The viewer side runs on
// Windows too. See lock_unix.go for why a dedicated lock file.
func Lock(path string) (unlock func(), err error) {
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	h := windows.Handle(fh.Fd())
	ol := new(windows.Overlapped)
	if err := windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, ol); err != nil {
		fh.Close()
		return nil, err
	}
	return func() {
		windows.UnlockFileEx(h, 0, 1, 0, ol)
		fh.Close()
	}, nil
}

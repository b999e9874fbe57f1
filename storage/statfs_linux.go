package storage

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// freeSpace is what an unprivileged writer can still use on dir's
// filesystem (f_bavail, which leaves out blocks reserved for root).
func freeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

//go:build !unix

package atomicfile

import "os"

// MatchDirOwner does nothing where files have no Unix owner.
func MatchDirOwner(f *os.File, dir string) error { return nil }

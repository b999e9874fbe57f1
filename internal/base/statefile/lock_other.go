//go:build !unix && !windows

package statefile

// Lock is a no-op where no file locking is available; the in-process
// mutex in File still serialises writers of one process.
func Lock(string) (unlock func(), err error) { return func() {}, nil }

// Package statefile keeps a small JSON document on flash that several
// processes share (the running agent and the camagent CLI): writers take an
// flock around read-modify-write, files are replaced with internal/base/atomicfile,
// and readers reload when another process has replaced the file.
package statefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/camagent/camagent/internal/base/atomicfile"
)

// MaxSize bounds how much of a state file is read. These files hold a
// handful of entries; anything larger is corruption, not data.
const MaxSize = 1 << 20

// File is a JSON document of type T stored at a path. The zero T stands for
// a missing file. A File is safe for concurrent use.
type File[T any] struct {
	path     string
	lockPath string
	perm     os.FileMode

	mu    sync.Mutex
	data  T
	stamp os.FileInfo // stat of the file data was read from; nil if missing
}

// Open returns the document at path, reading it if it exists. perm is the
// mode new files are written with.
func Open[T any](path string, perm os.FileMode) (*File[T], error) {
	f := &File[T]{path: path, lockPath: path + ".lock", perm: perm}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.refresh(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the document's file name.
func (f *File[T]) Path() string { return f.path }

// View calls fn with the current document, reloaded first if another
// process replaced the file. fn must not keep references into the document.
func (f *File[T]) View(fn func(T) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.refresh(); err != nil {
		return err
	}
	return fn(f.data)
}

// Update reads the document under an exclusive lock shared with other
// processes, lets fn change it and writes it back. If fn returns an error
// nothing is written and the error is returned. If fn returns ErrNoChange
// nothing is written and Update returns nil.
func (f *File[T]) Update(fn func(*T) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	unlock, err := Lock(f.lockPath)
	if err != nil {
		return fmt.Errorf("lock %s: %w", f.lockPath, err)
	}
	defer unlock()
	// Another process may have written since our last look; a stale copy
	// here would silently undo its change.
	if err := f.refresh(); err != nil {
		return err
	}
	next, err := f.clone()
	if err != nil {
		return err
	}
	if err := fn(&next); err != nil {
		if errors.Is(err, ErrNoChange) {
			return nil
		}
		return err
	}
	return f.write(next)
}

// ErrNoChange tells Update that fn decided not to modify the document.
var ErrNoChange = errors.New("statefile: no change")

// refresh reloads the document if the file changed since it was last read.
// atomicfile replaces the file by rename, so a new inode is the usual
// signal; mtime and size catch editors that write in place.
func (f *File[T]) refresh() error {
	info, err := os.Stat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		var zero T
		f.data, f.stamp = zero, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.path, err)
	}
	if f.stamp != nil && os.SameFile(f.stamp, info) &&
		f.stamp.ModTime().Equal(info.ModTime()) && f.stamp.Size() == info.Size() {
		return nil
	}
	return f.load()
}

func (f *File[T]) load() error {
	fh, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		var zero T
		f.data, f.stamp = zero, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", f.path, err)
	}
	defer fh.Close()
	// Stat the open handle, not the path, so the stamp belongs to the
	// bytes we read even if the file is replaced meanwhile.
	info, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.path, err)
	}
	raw, err := io.ReadAll(io.LimitReader(fh, MaxSize+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", f.path, err)
	}
	if len(raw) > MaxSize {
		return fmt.Errorf("read %s: larger than %d bytes", f.path, MaxSize)
	}
	var data T
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &data); err != nil {
			return fmt.Errorf("parse %s: %w", f.path, err)
		}
	}
	f.data, f.stamp = data, info
	return nil
}

// clone deep-copies the cached document through JSON so that fn in Update
// cannot corrupt the cache if it fails half way.
func (f *File[T]) clone() (T, error) {
	var out T
	raw, err := json.Marshal(f.data)
	if err != nil {
		return out, fmt.Errorf("encode %s: %w", f.path, err)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("copy %s: %w", f.path, err)
	}
	return out, nil
}

func (f *File[T]) write(next T) error {
	raw, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", f.path, err)
	}
	raw = append(raw, '\n')
	if err := atomicfile.WriteFile(f.path, raw, f.perm); err != nil {
		return err
	}
	info, err := os.Stat(f.path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.path, err)
	}
	f.data, f.stamp = next, info
	return nil
}

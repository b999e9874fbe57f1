package stream

import (
	"sync"
	"sync/atomic"
)

// maxGroupBytes caps one cached group of pictures. An encoder that sends no
// key frame for this long would otherwise grow the hub without bound; past
// the cap, frames are dropped until the next key frame.
const maxGroupBytes = 64 << 20

// group is one group of pictures as the hub holds it: the wire encoding of
// each frame, shared read-only by every viewer's sender. It only grows, and
// each growth closes the changed channel so that waiting senders wake up
// without the publisher ever waiting for them.
type group struct {
	seq uint64

	// buffered is the hub's count of bytes held in live groups.
	buffered *atomic.Int64
	// refs counts holders: the hub while the group is current, and each
	// viewer sending it. The last release returns its bytes to buffered.
	refs atomic.Int32

	mu      sync.Mutex
	frames  [][]byte
	size    int
	full    bool          // over maxGroupBytes: later frames are dropped
	changed chan struct{} // closed and replaced on every append and at end
	done    chan struct{} // closed at end
}

func newGroup(seq uint64, buffered *atomic.Int64) *group {
	g := &group{
		seq:      seq,
		buffered: buffered,
		changed:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	g.refs.Store(1) // the hub's reference
	return g
}

// append adds one wire-encoded frame. It reports false if the group has
// ended or is full, so the frame was not added.
func (g *group) append(frame []byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended() || g.full {
		return false
	}
	if g.size+len(frame) > maxGroupBytes {
		g.full = true // a gap would corrupt every later delta: drop them all
		return false
	}
	g.frames = append(g.frames, frame)
	g.size += len(frame)
	g.buffered.Add(int64(len(frame)))
	g.notifyLocked()
	return true
}

// end marks the group complete; senders that have written every frame
// finish its stream, the others are stale.
func (g *group) end() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.ended() {
		close(g.done)
		g.notifyLocked()
	}
}

func (g *group) ended() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

func (g *group) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// next returns frame i if it exists. Otherwise it reports whether the group
// has ended and, if not, a channel that is closed when that changes.
func (g *group) next(i int) (frame []byte, ended bool, wait <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i < len(g.frames) {
		return g.frames[i], false, nil
	}
	return nil, g.ended(), g.changed
}

// count returns the number of frames appended so far.
func (g *group) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.frames)
}

func (g *group) acquire() { g.refs.Add(1) }

func (g *group) release() {
	if g.refs.Add(-1) == 0 {
		g.mu.Lock()
		g.buffered.Add(-int64(g.size))
		g.frames = nil
		g.mu.Unlock()
	}
}

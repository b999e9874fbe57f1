package capture

import "sync"

// Recycler is implemented by sources that can reuse frame buffers. A
// caller that is done with a frame's Data (nothing kept a reference to
// it) hands it back with Recycle; the source may then fill it with a later
// frame. At 720p a raw frame is 1.4-1.8 MB, so reusing a few buffers saves
// the garbage collector 40-55 MB/s and the process several MB of heap.
// Recycling is optional: a frame never handed back is simply garbage.
type Recycler interface {
	Recycle(data []byte)
}

// Recycle hands data back to s if s reuses buffers, and does nothing
// otherwise.
func Recycle(s Source, data []byte) {
	if r, ok := s.(Recycler); ok {
		r.Recycle(data)
	}
}

// bufferPool is a small free list of frame buffers. Unlike sync.Pool it
// keeps its buffers across garbage collections, which is the point here.
type bufferPool struct {
	mu   sync.Mutex
	free [][]byte
}

// maxPooled bounds the pool: the capture loop holds one frame at a time,
// so a couple of spare buffers cover it.
const maxPooled = 3

// get returns a buffer of length n, reused when one is big enough.
func (p *bufferPool) get(n int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if b := p.free[i]; cap(b) >= n {
			p.free = append(p.free[:i], p.free[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n)
}

func (p *bufferPool) put(b []byte) {
	if cap(b) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < maxPooled {
		p.free = append(p.free, b[:0])
	}
}

package storage

import (
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// preRoll is the in-memory ring of recent access units kept in ModeEvent.
// It always starts at a key frame and spans at least length, so an event
// recording can begin that far before the trigger and still decode.
type preRoll struct {
	length time.Duration
	aus    []media.AccessUnit
}

func (p *preRoll) push(au media.AccessUnit) {
	if len(p.aus) == 0 && !au.Key {
		return
	}
	p.aus = append(p.aus, au)
	// Drop the oldest group of pictures while the rest still covers length.
	for {
		k := p.nextKey()
		if k < 0 || au.PTS-p.aus[k].PTS < p.length {
			return
		}
		n := copy(p.aus, p.aus[k:])
		clear(p.aus[n:]) // let the dropped frames be collected
		p.aus = p.aus[:n]
	}
}

// nextKey is the index of the first key frame after the first frame.
func (p *preRoll) nextKey() int {
	for i := 1; i < len(p.aus); i++ {
		if p.aus[i].Key {
			return i
		}
	}
	return -1
}

func (p *preRoll) reset() {
	clear(p.aus)
	p.aus = p.aus[:0]
}

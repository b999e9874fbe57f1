package traversal

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/camagent/camagent/p2p/natwire"
)

// coreLab runs a clientCore on an engine, as the Client does, with fake
// I/O: a camera whose reachable candidates validate (after labProbeRTT)
// and whose others time out, and a direct path that answers keepalives
// until it is cut. Inside a synctest bubble its timers run on fake time:
// the tests below check the core's timing to the nanosecond, without
// sleeping.
type coreLab struct {
	t         *testing.T
	ctx       context.Context
	eng       *engine
	events    chan event
	start     time.Time
	reachable map[netip.AddrPort]bool

	mu        sync.Mutex
	lastHeard time.Time
	cut       bool // the direct path is dead
	log       []timed
}

const labProbeRTT = 30 * time.Millisecond // a direct round trip

func newCoreLab(t *testing.T, reachable ...netip.AddrPort) *coreLab {
	ctx, cancel := context.WithCancel(t.Context())
	l := &coreLab{t: t, ctx: ctx, events: make(chan event), start: time.Now(), reachable: map[netip.AddrPort]bool{}}
	for _, a := range reachable {
		l.reachable[a] = true
	}
	core := newClientCore(coreConfig{
		Relay: relayAddr, LocalPrefixes: viewerLANs,
		ProbeTimeout: DefaultProbeTimeout, Keepalive: DefaultKeepalive, DeadAfter: DefaultDeadAfter,
		RetryMin: DefaultRetryMin, RetryMax: DefaultRetryMax, RelayRefresh: DefaultRelayRefresh,
	})
	l.eng = newEngine(core, time.Now, l.sense, l.perform)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer l.eng.stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-l.events:
				l.eng.dispatch(ev)
			case <-l.eng.timer.C:
				l.eng.dispatch(timerFired{})
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *coreLab) send(ev event) {
	select {
	case l.events <- ev:
	case <-l.ctx.Done():
	}
}

// after sends ev d from now, as a goroutine of the Client's would.
func (l *coreLab) after(d time.Duration, ev event) {
	time.AfterFunc(d, func() { l.send(ev) })
}

func (l *coreLab) sense() senses {
	l.mu.Lock()
	defer l.mu.Unlock()
	return senses{local: []netip.AddrPort{viewerLAN}, rtt: coreRTT, lastHeard: l.lastHeard}
}

func (l *coreLab) heard() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.cut {
		l.lastHeard = time.Now()
	}
}

// cutDirect kills the direct path and returns when it was last heard.
func (l *coreLab) cutDirect() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	return l.lastHeard.Sub(l.start)
}

// restoreDirect makes the direct path answer again.
func (l *coreLab) restoreDirect() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = false
}

func (l *coreLab) perform(a action) event {
	l.mu.Lock()
	l.log = append(l.log, timed{time.Since(l.start), a})
	cut := l.cut
	l.mu.Unlock()
	switch a := a.(type) {
	case startProbe:
		if l.reachable[a.addr] && !cut {
			l.after(labProbeRTT, probeDone{id: a.id, ok: true})
		} else {
			l.after(DefaultProbeTimeout, probeDone{id: a.id})
		}
	case switchPath:
		l.heard() // the PATH_RESPONSE came on it
		return switchDone{id: a.id, ok: true}
	case fallBack:
		return fallbackDone{ok: true}
	case sendKeepalive:
		time.AfterFunc(labProbeRTT, l.heard) // the echo
	}
	return nil
}

// actions returns what the core did so far.
func (l *coreLab) actions() []timed {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]timed(nil), l.log...)
}

func eventsAt(ts []timed, kind EventKind) []time.Duration {
	var out []time.Duration
	for _, ta := range ts {
		if e, ok := ta.a.(emit); ok && e.e.Kind == kind {
			out = append(out, ta.at)
		}
	}
	return out
}

func timesOf[T action](ts []timed) []time.Duration {
	var out []time.Duration
	for _, ta := range timedOf[T](ts) {
		out = append(out, ta.at)
	}
	return out
}

// TestTimerBackoff: against a camera that never answers, the rounds come
// RetryMin after the first failure, then twice as late each time, up to
// RetryMax.
func TestTimerBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newCoreLab(t)
		l.send(candidateAdded{&natwire.AddAddress{Seq: 0, Addr: camPub}})
		time.Sleep(5 * time.Minute) // fake time: the bubble's clock jumps
		synctest.Wait()
		log := l.actions()
		rounds, failed := timesOf[roundStarted](log), eventsAt(log, EventRoundFailed)
		if len(rounds) < 8 || rounds[0] != gatherDelay {
			t.Fatalf("rounds at %v, want the first gatherDelay after ADD_ADDRESS", rounds)
		}
		want := []time.Duration{2, 4, 8, 16, 32, 60, 60}
		for i, w := range want {
			// A round fails one probe timeout after its probe started.
			if got := failed[i] - rounds[i]; got != coreRTT+10*time.Millisecond+DefaultProbeTimeout {
				t.Errorf("round %d failed %v after it started", i+1, got)
			}
			if got := rounds[i+1] - failed[i]; got != w*time.Second {
				t.Errorf("round %d came %v after round %d failed, want %v", i+2, got, i+1, w*time.Second)
			}
		}
	})
}

// TestTimerFallback: direct 20 ms (gatherDelay) + RTT + 10 ms + the probe
// after ADD_ADDRESS; while the camera answers keepalives the path stays;
// once it is cut, a keepalive Keepalive after the last packet (and every
// Keepalive/2 after), the relay path validated at DeadAfter/2, the
// fallback at DeadAfter, and the next round RetryMin after it.
func TestTimerFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newCoreLab(t, camHost)
		l.send(candidateAdded{&natwire.AddAddress{Seq: 0, Addr: camHost}})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		log := l.actions()
		wantDirect := gatherDelay + coreRTT + 10*time.Millisecond + labProbeRTT
		if got := eventsAt(log, EventDirect); len(got) != 1 || got[0] != wantDirect {
			t.Fatalf("direct at %v, want once at %v", got, wantDirect)
		}
		if got := timesOf[fallBack](log); len(got) != 0 {
			t.Fatalf("fell back at %v from a path that answers its keepalives", got)
		}
		if got := timesOf[validateRelay](log); len(got) != 0 {
			t.Fatalf("relay path validated at %v while the direct path was healthy", got)
		}
		keepalives := timesOf[sendKeepalive](log)
		if len(keepalives) < 10 || keepalives[0] != wantDirect+DefaultKeepalive {
			t.Fatalf("keepalives at %v, want the first Keepalive after the switch", keepalives[:min(len(keepalives), 5)])
		}

		heard := l.cutDirect()
		cutAt := time.Since(l.start)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		log = l.actions()
		var after []timed
		for _, ta := range log {
			if ta.at >= cutAt {
				after = append(after, ta)
			}
		}
		keepalives = timesOf[sendKeepalive](after)
		if len(keepalives) == 0 || keepalives[len(keepalives)-1] >= heard+DefaultDeadAfter {
			t.Fatalf("keepalives at %v after the cut (last heard %v)", keepalives, heard)
		}
		for i := 1; i < len(keepalives); i++ {
			if d := keepalives[i] - keepalives[i-1]; d != DefaultKeepalive/2 {
				t.Fatalf("keepalives at %v: %v apart, want Keepalive/2", keepalives, d)
			}
		}
		if got := timesOf[validateRelay](after); len(got) != 1 || got[0] != heard+DefaultDeadAfter/2 {
			t.Fatalf("relay validated at %v, want once at %v (last heard %v + DeadAfter/2)", got, heard+DefaultDeadAfter/2, heard)
		}
		fell := timesOf[fallBack](after)
		if len(fell) != 1 || fell[0] != heard+DefaultDeadAfter {
			t.Fatalf("fell back at %v, want once at %v (last heard %v + DeadAfter)", fell, heard+DefaultDeadAfter, heard)
		}
		if got := eventsAt(after, EventRelay); len(got) != 1 || got[0] != fell[0] {
			t.Fatalf("relay event at %v, want at the fallback", got)
		}
		if got := timesOf[roundStarted](after); len(got) == 0 || got[0] != fell[0]+DefaultRetryMin {
			t.Fatalf("rounds after the fallback at %v, want the first RetryMin after it", got)
		}
	})
}

// TestTimerDirectPathRecovers: a direct path quiet past DeadAfter/2 gets
// the relay path validated; when its keepalives are answered again before
// DeadAfter the connection stays direct and the relay route is muted
// again.
func TestTimerDirectPathRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newCoreLab(t, camHost)
		l.send(candidateAdded{&natwire.AddAddress{Seq: 0, Addr: camHost}})
		time.Sleep(time.Second)
		heard := l.cutDirect()
		time.Sleep(heard + DefaultDeadAfter*3/5 - time.Since(l.start)) // past DeadAfter/2, before DeadAfter
		l.restoreDirect()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		log := l.actions()
		if got := timesOf[fallBack](log); len(got) != 0 {
			t.Fatalf("fell back at %v from a path that recovered", got)
		}
		warm := timesOf[validateRelay](log)
		if len(warm) != 1 || warm[0] != heard+DefaultDeadAfter/2 {
			t.Fatalf("relay validated at %v, want once at %v", warm, heard+DefaultDeadAfter/2)
		}
		var muted []time.Duration
		for _, ta := range log {
			if m, ok := ta.a.(muteRelay); ok && m.mute && ta.at > warm[0] {
				muted = append(muted, ta.at)
			}
		}
		if len(muted) != 1 || muted[0] >= heard+DefaultDeadAfter {
			t.Fatalf("relay route muted again at %v, want once before %v", muted, heard+DefaultDeadAfter)
		}
	})
}

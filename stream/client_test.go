package stream

import (
	"testing"
)

// waitNewestGroup waits until c has seen group seq arrive.
func waitNewestGroup(t *testing.T, c *Client, seq uint64) {
	t.Helper()
	for {
		c.mu.Lock()
		newest, changed := c.newestSeq, c.pendingChanged
		c.mu.Unlock()
		if newest >= seq {
			return
		}
		select {
		case <-changed:
		case <-c.done:
			t.Fatal("connection closed")
		}
	}
}

// TestClientSkipsToNewestGroup lets the application fall behind by a whole
// group: ReadFrame must abandon the old group and start at the new key frame.
func TestClientSkipsToNewestGroup(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	c := env.client()
	env.hub.Publish(smallAU(0))
	checkFrame(t, readFrame(t, c), smallAU(0))
	for i := 1; i <= 30; i++ { // the rest of group 1 and the key frame of group 2
		env.hub.Publish(smallAU(i))
	}
	waitNewestGroup(t, c, 2)
	f := readFrame(t, c)
	checkFrame(t, f, smallAU(30))
	if f.Group != 2 {
		t.Errorf("group %d, want 2", f.Group)
	}
	if st := c.Stats(); st.GroupsSkipped != 1 || st.Frames != 2 {
		t.Errorf("stats %+v", st)
	}
	env.hub.Publish(smallAU(31))
	checkFrame(t, readFrame(t, c), smallAU(31))
}

func TestClientMeasuresRTT(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	c := env.client()
	for {
		c.mu.Lock()
		rtt, updated := c.stats.RTT, c.rttUpdated
		c.mu.Unlock()
		if rtt > 0 {
			break
		}
		select {
		case <-updated:
		case <-c.done:
			t.Fatal("connection closed")
		}
	}
	if rtt := c.Stats().RTT; rtt > testTimeout {
		t.Errorf("RTT %v", rtt)
	}
}

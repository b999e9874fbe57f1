package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/core/viewer"
)

// TestViewerSession runs the viewer's one session against an agent as
// `camagent view` does, without and with --resume: the summary has the
// figures and the path, and the resume counters only when resuming.
func TestViewerSession(t *testing.T) {
	a := testAgent(t, nil)
	id, cam := pairViewer(t, a, "phone")
	for _, resume := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var msgs bytes.Buffer
		s := viewer.Session{Dialer: viewer.Dialer{Identity: id}, Camera: cam, Name: "test-view", Resume: resume, Messages: &msgs}
		rep, err := s.Watch(ctx, viewer.Options{Duration: time.Second})
		if err != nil || rep == nil {
			t.Fatalf("resume=%v: %+v, %v", resume, rep, err)
		}
		if rep.Frames < 10 || rep.Camera != "test-camera" || rep.PathStats == nil || rep.Path != "direct" {
			t.Errorf("resume=%v: report %+v", resume, rep)
		}
		js, _ := json.Marshal(rep)
		if got := strings.Contains(string(js), `"reconnects":0`); got != resume {
			t.Errorf("resume=%v: summary %s", resume, js)
		}
		if !strings.HasPrefix(msgs.String(), "watching test-camera") {
			t.Errorf("resume=%v: messages %q", resume, msgs.String())
		}
	}
}

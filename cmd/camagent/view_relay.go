package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/camagent/camagent/internal/base/atomicfile"
	"github.com/camagent/camagent/internal/core/viewer"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/stream"
)

// viewResuming is `camagent view --resume`: one output file across
// reconnections, for cameras reached through relays that may restart.
func viewResuming(ctx context.Context, id *identity.Identity, cam identity.Camera, route viewer.Route,
	output, format string, duration time.Duration, summaryPath string, quiet bool, log *slog.Logger) error {
	switch route {
	case viewer.RouteAuto, viewer.RouteDirect, viewer.RouteRelay:
	default:
		return fmt.Errorf("--via %q: want auto, direct or relay", route)
	}
	var paths viewer.Paths
	connect := func(ctx context.Context) (*stream.Client, error) {
		link, err := viewer.DialLink(ctx, id, cam, stream.QUICConfig(), route, log)
		if err != nil {
			return nil, err
		}
		conn := link.Conn
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := stream.NewClient(hctx, conn, "camagent-view/"+version)
		if err != nil {
			conn.CloseWithError(0, "")
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "watching %s via %s\n", c.CameraName(), conn.RemoteAddr())
		paths.Add(link)
		startTraversal(link, c)
		return c, nil
	}
	opts := viewer.Options{Output: output, Format: format, Duration: duration, Paths: paths.Stats}
	if !quiet {
		opts.Progress = os.Stderr
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration+60*time.Second)
		defer cancel()
	}
	sum, rs, err := viewer.WatchResuming(ctx, connect, opts, 1500*time.Millisecond)
	js, _ := json.Marshal(struct {
		viewer.Summary
		viewer.ResumeStats
	}{sum, rs})
	fmt.Fprintf(os.Stderr, "summary: %s\n", js)
	if summaryPath != "" {
		if werr := atomicfile.WriteFile(summaryPath, append(js, '\n'), 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/camagent/camagent/internal/base/atomicfile"
	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/core/viewer"
)

func newViewCommand() *cobra.Command {
	var (
		stateDir, output, format, summaryPath string
		addrs                                 []string
		duration                              time.Duration
		quiet, resume                         bool
		from, to                              string // recorded clip instead of live
		via, logLevel                         string
	)
	cmd := &cobra.Command{
		Use:     "view CAMERA",
		Aliases: []string{"viewer"},
		Short:   "Watch a paired camera: write its live stream to a file or stdout",
		Long: `Watch a paired camera. The live stream is written to --output as MP4
(by extension or --format mp4) or as raw H.264 ("-" is stdout, so
camagent view porch -o - | ffplay -f h264 -). Figures (fps, bitrate,
latency) go to stderr every second and as a summary at the end.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", defaultViewerState(), "viewer's key and known cameras")
	cmd.Flags().StringVarP(&output, "output", "o", "", `output file, "-" for stdout, empty to only measure`)
	cmd.Flags().StringVarP(&format, "format", "f", "", "raw or mp4 (default: by the output's extension)")
	cmd.Flags().DurationVarP(&duration, "duration", "d", 0, "stop after this much video (default: until interrupted)")
	cmd.Flags().StringSliceVar(&addrs, "addr", nil, "dial these host:port instead of the camera's known addresses")
	cmd.Flags().StringVar(&summaryPath, "summary", "", "also write the summary as JSON to this file")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no per-second figures")
	cmd.Flags().StringVar(&from, "from", "", "export the recording from this time (RFC 3339 or -DURATION) to -o FILE.mp4")
	cmd.Flags().StringVar(&to, "to", "", "with --from: until this time (default: now)")
	cmd.Flags().StringVar(&via, "via", "auto", "auto (direct, then the camera's relays), direct or relay")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "connection and NAT traversal log on stderr: debug, info, warn or error")
	cmd.Flags().BoolVar(&resume, "resume", false, "reconnect (directly or through a relay) when the stream stops, keeping one output")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if from != "" {
			return exportClip(cmd, recordingsFlags{stateDir: stateDir, addrs: addrs, via: via}, args[0], from, to, output)
		}
		id, cams, err := viewerSide(stateDir)
		if err != nil {
			return err
		}
		cam, err := cams.Get(args[0])
		if err != nil {
			return err
		}
		if len(addrs) > 0 {
			cam.Addrs = addrs
		}
		log, err := logging.New(os.Stderr, "text", logLevel)
		if err != nil {
			return err
		}
		route, err := parseVia(via)
		if err != nil {
			return err
		}
		s := viewer.Session{
			Dialer: viewer.Dialer{Identity: id, Route: route, Logger: log},
			Camera: cam, Name: "camagent-view/" + version, Resume: resume, Messages: os.Stderr,
		}
		opts := viewer.Options{Output: output, Format: format, Duration: duration}
		if !quiet {
			opts.Progress = os.Stderr
		}
		rep, err := s.Watch(cmd.Context(), opts)
		if rep == nil {
			return err
		}
		js, _ := json.Marshal(rep)
		fmt.Fprintf(os.Stderr, "summary: %s\n", js)
		if summaryPath != "" {
			if werr := atomicfile.WriteFile(summaryPath, append(js, '\n'), 0o644); werr != nil && err == nil {
				err = werr
			}
		}
		return err
	}
	return cmd
}

// parseVia reads --via.
func parseVia(via string) (viewer.Route, error) {
	route, err := viewer.ParseRoute(via)
	if err != nil {
		return "", fmt.Errorf("--via %q: want auto, direct or relay", via)
	}
	return route, nil
}

func contextWithTimeout(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), d)
}

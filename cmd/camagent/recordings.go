package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/camagent/camagent/internal/core/viewer"
	"github.com/camagent/camagent/storage/playback"
)

// recordingsFlags are shared by the commands that talk to a camera's
// recordings protocol.
type recordingsFlags struct {
	stateDir string
	addrs    []string
	via      string // auto, direct or relay
}

func (f *recordingsFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.stateDir, "state-dir", defaultViewerState(), "viewer's key and known cameras")
	cmd.Flags().StringSliceVar(&f.addrs, "addr", nil, "dial these host:port instead of the camera's known addresses")
	cmd.Flags().StringVar(&f.via, "via", "auto", "auto (direct, then the camera's relays), direct or relay")
}

// dial connects to the named camera's recordings protocol.
func (f *recordingsFlags) dial(cmd *cobra.Command, name string) (*playback.Client, *viewer.Link, error) {
	id, cams, err := viewerSide(f.stateDir)
	if err != nil {
		return nil, nil, err
	}
	cam, err := cams.Get(name)
	if err != nil {
		return nil, nil, err
	}
	if len(f.addrs) > 0 {
		cam.Addrs = f.addrs
	}
	route, err := parseVia(f.via)
	if err != nil {
		return nil, nil, err
	}
	s := viewer.Session{Dialer: viewer.Dialer{Identity: id, Route: route}, Camera: cam}
	return s.OpenRecordings(cmd.Context())
}

// parseWhen reads a time: RFC 3339 ("2025-03-01T12:00:00Z"), or a
// negative duration before now ("-10m").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if strings.HasPrefix(s, "-") {
		d, err := time.ParseDuration(s)
		if err == nil {
			return now.Add(d), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("time %q: use RFC 3339 (2025-03-01T12:00:00Z) or a duration before now (-10m)", s)
	}
	return t, nil
}

func newRecordingsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "recordings", Short: "List a paired camera's recordings and motion events"}
	var f recordingsFlags
	var from, to string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list CAMERA",
		Short: "List recordings and motion events (optionally between --from and --to)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			fromT, err := parseWhen(from, now)
			if err != nil {
				return err
			}
			toT, err := parseWhen(to, now)
			if err != nil {
				return err
			}
			client, link, err := f.dial(cmd, args[0])
			if err != nil {
				return err
			}
			defer link.Close()
			resp, err := client.List(cmd.Context(), fromT, toT)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(resp)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RECORDING START\tDURATION\tSIZE\t")
			for _, s := range resp.Segments {
				open := ""
				if s.Open {
					open = "(recording)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d kB\t%s\n", s.Start.UTC().Format(time.RFC3339Nano), s.Duration.Round(time.Millisecond), s.Size/1000, open)
			}
			fmt.Fprintln(tw, "\nEVENT\tSTART\tEND\tSCORE")
			for _, e := range resp.Events {
				end := "-"
				if !e.End.IsZero() {
					end = e.End.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\n", e.ID, e.Start.UTC().Format(time.RFC3339), end, e.Score)
			}
			return tw.Flush()
		},
	}
	f.bind(list)
	list.Flags().StringVar(&from, "from", "", "only from this time (RFC 3339 or -DURATION)")
	list.Flags().StringVar(&to, "to", "", "only until this time")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(list)
	return cmd
}

func newSnapshotCommand() *cobra.Command {
	var f recordingsFlags
	var output, event string
	cmd := &cobra.Command{
		Use:   "snapshot CAMERA",
		Short: "Save a still (JPEG) of a paired camera's current picture, or of a motion event",
		Args:  cobra.ExactArgs(1),
	}
	f.bind(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "snapshot.jpg", "JPEG file to write")
	cmd.Flags().StringVar(&event, "event", "", "the snapshot of this motion event (id from recordings list)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, link, err := f.dial(cmd, args[0])
		if err != nil {
			return err
		}
		defer link.Close()
		var jpg []byte
		if event != "" {
			jpg, err = client.EventSnapshot(cmd.Context(), event)
		} else {
			jpg, err = client.Still(cmd.Context())
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(output, jpg, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", output, len(jpg))
		return nil
	}
	return cmd
}

// exportClip is `camagent view CAMERA --from T --to T -o clip.mp4`.
func exportClip(cmd *cobra.Command, f recordingsFlags, name, from, to, output string) error {
	if output == "" || output == "-" || filepath.Ext(output) != ".mp4" {
		return errors.New("--from exports a clip: give -o FILE.mp4")
	}
	now := time.Now()
	fromT, err := parseWhen(from, now)
	if err != nil {
		return err
	}
	toT, err := parseWhen(to, now)
	if err != nil {
		return err
	}
	if toT.IsZero() {
		toT = now
	}
	client, link, err := f.dial(cmd, name)
	if err != nil {
		return err
	}
	defer link.Close()
	tmp := output + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	frames, first, err := client.Export(cmd.Context(), fromT, toT, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, output); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %d frames from %s\n", output, frames, first.UTC().Format(time.RFC3339Nano))
	return nil
}

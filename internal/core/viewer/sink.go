package viewer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/camagent/camagent/internal/base/fmp4"
	"github.com/camagent/camagent/internal/base/media"
)

// Sink receives access units in decode order.
type Sink interface {
	WriteAccessUnit(au media.AccessUnit) error
	Close() error
}

// OpenSink opens the output: "" discards, "-" is standard output, any
// other value a file. format "" picks mp4 for .mp4/.m4v/.mov and raw
// otherwise.
func OpenSink(output, format string, track media.Track) (Sink, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(output)) {
		case ".mp4", ".m4v", ".mov":
			format = "mp4"
		default:
			format = "raw"
		}
	}
	if format != "raw" && format != "mp4" {
		return nil, fmt.Errorf("output format %q: want raw or mp4", format)
	}
	if format == "mp4" && track.Codec != media.CodecH264 {
		return nil, fmt.Errorf("MP4 output needs H.264; the camera sends %s (use --format raw)", track.Codec)
	}
	var w io.WriteCloser
	switch output {
	case "":
		w = nopCloser{io.Discard}
	case "-":
		w = nopCloser{os.Stdout}
	default:
		if dir := filepath.Dir(output); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		f, err := os.Create(output)
		if err != nil {
			return nil, err
		}
		w = f
	}
	if format == "raw" {
		return rawSink{w}, nil
	}
	mw, err := fmp4.NewWriter(w, track, fmp4.Options{})
	if err != nil {
		w.Close()
		return nil, err
	}
	return &mp4Sink{mw: mw, w: w}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// rawSink writes the payloads back to back: an Annex-B elementary stream
// for H.264, an MJPEG stream for MJPEG; both are what ffplay reads from a
// pipe.
type rawSink struct{ w io.WriteCloser }

func (s rawSink) WriteAccessUnit(au media.AccessUnit) error {
	_, err := s.w.Write(au.Data)
	return err
}

func (s rawSink) Close() error { return s.w.Close() }

type mp4Sink struct {
	mw *fmp4.Writer
	w  io.WriteCloser
}

func (s *mp4Sink) WriteAccessUnit(au media.AccessUnit) error { return s.mw.WriteAccessUnit(au) }

func (s *mp4Sink) Close() error {
	err := s.mw.Close()
	if cerr := s.w.Close(); err == nil {
		err = cerr
	}
	return err
}

package storage

import (
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// TestRecorderLifecycle: Close returns with Done closed and Err nil, a
// second Close is harmless, and Write after Close neither blocks nor
// panics (the capture loop may still be running).
func TestRecorderLifecycle(t *testing.T) {
	r, err := New(Config{Dir: t.TempDir(), Mode: ModeContinuous})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
		t.Fatal("Done closed before Close")
	default:
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed when Close returned")
	}
	if err := r.Err(); err != nil {
		t.Errorf("Err: %v, want nil", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	wrote := make(chan struct{})
	go func() {
		r.Write(media.AccessUnit{Codec: media.CodecH264, Key: true, Data: []byte{0, 0, 0, 1, 0x65}})
		close(wrote)
	}()
	select {
	case <-wrote:
	case <-time.After(5 * time.Second):
		t.Fatal("Write after Close blocked")
	}
}

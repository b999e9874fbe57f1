package discovery

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/natwire"
)

// TestLearnerLifecycle: Close withdraws the report, closes Done and leaves
// Err nil; a report after Close is refused and adds no candidate back; a
// second Close is harmless.
func TestLearnerLifecycle(t *testing.T) {
	set := candidate.NewSet()
	l := NewLearner(set, "viewer:a")
	report := func(seq uint64) error {
		_, err := l.Handle(&natwire.ObservedAddress{Seq: seq, Addr: netip.MustParseAddrPort("203.0.113.2:4433")})
		return err
	}
	if err := report(0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
		t.Fatal("Done closed before Close")
	default:
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("Done not closed when Close returned")
	}
	if err := l.Err(); err != nil {
		t.Errorf("Err: %v, want nil", err)
	}
	if err := report(1); !errors.Is(err, ErrLearnerClosed) {
		t.Errorf("report after Close: %v, want %v", err, ErrLearnerClosed)
	}
	if cands, _ := set.Snapshot(); len(cands) != 0 {
		t.Errorf("candidates after Close: %v", cands)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

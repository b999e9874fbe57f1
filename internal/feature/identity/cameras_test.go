package identity

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestCameraStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), CamerasFile)
	s, err := OpenCameraStore(path)
	if err != nil {
		t.Fatal(err)
	}
	porch := Camera{Name: "porch", Fingerprint: FormatFingerprint(sampleFP), Addrs: []string{"192.0.2.1:4433"}, PairedAt: time.Now()}
	if err := s.Add(porch); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("porch")
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint != sampleFP || len(got.Addrs) != 1 {
		t.Fatalf("Get = %+v (fingerprint should be canonical)", got)
	}
	// Mutating the result must not reach the store.
	got.Addrs[0] = "evil:1"
	again, _ := s.Get("porch")
	if again.Addrs[0] != "192.0.2.1:4433" {
		t.Fatal("Get returned an alias into the store")
	}

	// Re-pairing the same camera under a new name replaces the old entry.
	renamed := porch
	renamed.Name = "front door"
	if err := s.Add(renamed); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name != "front door" {
		t.Fatalf("List = %+v, %v", list, err)
	}

	other, _ := OpenCameraStore(path) // another process
	if err := other.Remove("front door"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("front door"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after remove by another process: %v", err)
	}
	if err := s.Remove("front door"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestCameraStoreRejects(t *testing.T) {
	s, err := OpenCameraStore(filepath.Join(t.TempDir(), CamerasFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Camera{
		{Name: "", Fingerprint: sampleFP},
		{Name: "x", Fingerprint: "short"},
	} {
		if err := s.Add(c); err == nil {
			t.Errorf("Add(%+v) accepted", c)
		}
	}
}

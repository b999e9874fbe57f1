package pairing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/feature/identity"
)

// withOwnRelays gives the camera relays that stand in for the agent's
// per-viewer relay URLs: a locator secret that depends on the viewer's
// key.
func withOwnRelays(c *camera) {
	c.relays = func(v identity.Viewer) ([]string, error) {
		return []string{fmt.Sprintf("https://203.0.113.1:4443/?fp=%s&rv=%064x", c.id.Fingerprint, v.Fingerprint[:8])}, nil
	}
}

// TestJoinKeepsTheViewersOwnRelays: the pairing reply's relay URLs (the
// viewer's own locators) replace the offer's one-time ones.
func TestJoinKeepsTheViewersOwnRelays(t *testing.T) {
	cam := startCamera(t, withOwnRelays)
	v := newViewer(t)
	o := cam.offer(t, "")
	o.Relays = []string{fmt.Sprintf("https://203.0.113.1:4443/?fp=%s&rv=%064x", cam.id.Fingerprint, 1)}
	got, err := v.join(t, o, "phone")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cam.relays(identity.Viewer{Fingerprint: v.id.Fingerprint})
	if !slices.Equal(got.Relays, want) {
		t.Fatalf("saved relays %q, want the viewer's own %q", got.Relays, want)
	}
}

// TestRefreshNeedsAPairedKey: a paired viewer fetches its relay URLs over
// its authenticated session; a revoked or unknown key gets not_paired.
func TestRefreshNeedsAPairedKey(t *testing.T) {
	cam := startCamera(t, withOwnRelays)
	v := newViewer(t)
	saved, err := v.join(t, cam.offer(t, ""), "phone")
	if err != nil {
		t.Fatal(err)
	}
	if err := cam.serveResult(t); err != nil {
		t.Fatal(err)
	}
	saved.Relays = nil // as a viewer paired before per-viewer locators
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Refresh(ctx, saved, v.id, v.cameras)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cam.relays(identity.Viewer{Fingerprint: v.id.Fingerprint})
	if stored, _ := v.cameras.Get(saved.Name); !slices.Equal(got.Relays, want) || !slices.Equal(stored.Relays, want) {
		t.Fatalf("refresh got %q, stored %q, want %q", got.Relays, stored.Relays, want)
	}
	if _, err := cam.viewers.Revoke("phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := Refresh(ctx, saved, v.id, v.cameras); !errors.Is(err, ErrNotPaired) {
		t.Fatalf("refresh by a revoked viewer: %v, want ErrNotPaired", err)
	}
	stranger := newViewer(t)
	if _, err := Refresh(ctx, saved, stranger.id, stranger.cameras); !errors.Is(err, ErrNotPaired) {
		t.Fatalf("refresh by an unpaired key: %v, want ErrNotPaired", err)
	}
}

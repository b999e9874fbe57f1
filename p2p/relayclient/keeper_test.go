package relayclient

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/camagent/camagent/p2p/relayserver"
)

// TestKeeperLifecycle: Close stops a running Keeper once its registration
// is closed (Run returns nil, Done closes, Err is nil, no live
// registration is left); the end of Run's context does the same; a Keeper
// closed before Run never runs.
func TestKeeperLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	cam := startCamera(t)
	for _, stop := range []string{"Close", "context"} {
		t.Run(stop, func(t *testing.T) {
			rctx, rcancel := context.WithCancel(ctx)
			defer rcancel()
			k := NewKeeper(KeeperConfig{Relays: []RelayURL{rl.url}, Identity: cam.id, Token: rl.Token, Mux: cam.mux})
			runErr := make(chan error, 1)
			go func() { runErr <- k.Run(rctx) }()
			waitRegistered(t, ctx, k)
			if stop == "Close" {
				if err := k.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			} else {
				rcancel()
			}
			select {
			case <-k.Done():
			case <-ctx.Done():
				t.Fatal("Done not closed")
			}
			if err := <-runErr; err != nil {
				t.Errorf("Run: %v, want nil", err)
			}
			if err := k.Err(); err != nil {
				t.Errorf("Err: %v, want nil", err)
			}
			if live := k.Public(); len(live) != 0 {
				t.Errorf("registrations left after stopping: %v", live)
			}
		})
	}
	t.Run("Close before Run", func(t *testing.T) {
		k := NewKeeper(KeeperConfig{Relays: []RelayURL{rl.url}, Identity: cam.id, Token: rl.Token, Mux: cam.mux})
		if err := k.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-k.Done()
		if err := k.Run(ctx); !errors.Is(err, errRunAgain) {
			t.Fatalf("Run after Close: %v, want %v", err, errRunAgain)
		}
		if err := k.Err(); err != nil {
			t.Errorf("Err: %v, want nil", err)
		}
	})
}

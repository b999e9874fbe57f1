package relayclient

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/camagent/camagent/internal/feature/identity"
)

// Locator secrets (docs/relay.md, "Finding the camera again"). A camera
// registers at each relay under one locator per paired viewer and one per
// live pairing code; a viewer holds only its own. Each secret is derived
// from the camera's key, the relay's key (so the same viewer's locators at
// two relays cannot be matched) and what it is for, so the camera keeps
// no state of its own beyond viewers.json and codes.json:
//
//   - a viewer's: HMAC-SHA256(camera seed, "camagent relay locator v2",
//     "viewer", relay fp, viewer fp, epoch), where the epoch is the
//     viewer's paired_at in viewers.json, so pairing the same key again
//     after a revocation gives it a new secret;
//   - a pairing code's: HMAC-SHA256(camera seed, "camagent relay locator
//     v2", "pairing", relay fp, code id), registered only while the code is
//     live, so an old offer locates nothing.
//
// Revoking a viewer removes its locator from every registration; no other
// viewer's secret changes, so a viewer that was offline meanwhile needs
// nothing new.

// ViewerSecret is the locator secret of the paired viewer viewerFP at the
// relay relayFP.
func ViewerSecret(camera *identity.Identity, relayFP, viewerFP, epoch string) []byte {
	return locatorSecret(camera, "viewer", relayFP, viewerFP, epoch)
}

// PairingSecret is the locator secret a pairing offer carries for the
// code codeID at the relay relayFP.
func PairingSecret(camera *identity.Identity, relayFP, codeID string) []byte {
	return locatorSecret(camera, "pairing", relayFP, codeID)
}

func locatorSecret(camera *identity.Identity, parts ...string) []byte {
	seed := camera.Certificate.PrivateKey.(interface{ Seed() []byte }).Seed()
	mac := hmac.New(sha256.New, seed)
	mac.Write([]byte("camagent relay locator v2"))
	for _, p := range parts {
		mac.Write([]byte{0})
		mac.Write([]byte(p))
	}
	return mac.Sum(nil)
}

// LocatorHash is what a camera registers a secret under: its SHA-256.
func LocatorHash(secret []byte) [32]byte { return sha256.Sum256(secret) }

// formatLocators renders the Camagent-Locator header.
func formatLocators(hashes [][32]byte) string {
	parts := make([]string, len(hashes))
	for i, h := range hashes {
		parts[i] = hex.EncodeToString(h[:])
	}
	return strings.Join(parts, ",")
}

// OfferURLs turns the agent's relay URLs into what a pairing offer for
// the code codeID carries: each with that code's locator secret.
func OfferURLs(relays []string, camera *identity.Identity, codeID string) ([]string, error) {
	var out []string
	for _, s := range relays {
		r, err := ParseRelayURL(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r.WithSecret(PairingSecret(camera, r.Fingerprint, codeID)).String())
	}
	return out, nil
}

// ViewerURLs are the relay URLs the paired viewer viewerFP keeps: each
// with its own locator secret. The camera hands them over after pairing
// (and on request, to a paired viewer) over its authenticated session.
func ViewerURLs(relays []string, camera *identity.Identity, viewerFP, epoch string) ([]string, error) {
	var out []string
	for _, s := range relays {
		r, err := ParseRelayURL(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r.WithSecret(ViewerSecret(camera, r.Fingerprint, viewerFP, epoch)).String())
	}
	return out, nil
}

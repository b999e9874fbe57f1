package relayclient

import (
	"crypto/tls"

	"github.com/camagent/camagent/internal/feature/identity"
)

func serverTLS(id *identity.Identity) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{id.Certificate}, NextProtos: []string{"echo"}, MinVersion: tls.VersionTLS13}
}

// testSecret is the locator secret of a test viewer of camera cam at r.
func testSecret(cam *identity.Identity, r RelayURL) []byte {
	return ViewerSecret(cam, r.Fingerprint, "test-viewer", "")
}

// testLocators registers a camera under testSecret.
func testLocators(cam *identity.Identity) func(RelayURL) [][32]byte {
	return func(r RelayURL) [][32]byte { return [][32]byte{LocatorHash(testSecret(cam, r))} }
}

package relayclient

import (
	"crypto/tls"

	"github.com/camagent/camagent/internal/feature/identity"
)

func serverTLS(id *identity.Identity) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{id.Certificate}, NextProtos: []string{"echo"}, MinVersion: tls.VersionTLS13}
}

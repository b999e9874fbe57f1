// Package identity holds the long-term keys of cameras and viewers, their
// fingerprints, the camera's paired-viewer store, the viewer's known-camera
// store and the TLS configurations that enforce both (see docs/pairing.md).
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/camagent/camagent/internal/base/atomicfile"
	"github.com/camagent/camagent/internal/base/statefile"
)

// File names inside the state directory.
const (
	KeyFile  = "key.pem"  // PKCS #8 Ed25519 private key, mode 0600
	CertFile = "cert.pem" // self-signed certificate for KeyFile
)

// Identity is one party's long-term key and self-signed certificate.
type Identity struct {
	Certificate tls.Certificate
	Leaf        *x509.Certificate
	// Fingerprint is FingerprintOf(Leaf), the name peers pin.
	Fingerprint string
}

// LoadOrCreate loads the identity kept in dir, creating the directory (mode
// 0700), a new key and a certificate on first use. A lost or unreadable
// certificate is re-issued from the existing key, so the fingerprint (which
// covers only the public key) survives.
func LoadOrCreate(dir string) (*Identity, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	keyPath := filepath.Join(dir, KeyFile)
	key, err := loadKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKey(keyPath)
	}
	if err != nil {
		return nil, err
	}
	certPath := filepath.Join(dir, CertFile)
	leaf, err := loadCert(certPath, key)
	if err != nil {
		if leaf, err = createCert(certPath, key); err != nil {
			return nil, err
		}
	}
	return &Identity{
		Certificate: tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf},
		Leaf:        leaf,
		Fingerprint: FingerprintOf(leaf),
	}, nil
}

// lockDir serialises first-start key creation between the agent and a CLI
// command started at the same moment, so that both end up with one key.
func lockDir(dir string) (func(), error) {
	unlock, err := statefile.Lock(filepath.Join(dir, KeyFile+".lock"))
	if err != nil {
		return nil, fmt.Errorf("identity: lock %s: %w", dir, err)
	}
	return unlock, nil
}

func loadKey(path string) (ed25519.PrivateKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// A key readable by others is no longer private, but refusing to start
	// would leave the camera dead; tighten the mode instead.
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("identity: tighten %s: %w", path, err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("identity: %s: no PEM PRIVATE KEY block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("identity: %s: key is %T, want Ed25519", path, parsed)
	}
	return key, nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: encode key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return key, nil
}

// loadCert returns the certificate in path if it certifies key.
func loadCert(path string, key ed25519.PrivateKey) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("identity: %s: no PEM CERTIFICATE block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", path, err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("identity: %s does not match %s", path, KeyFile)
	}
	return cert, nil
}

// createCert issues a self-signed certificate for key. Peers never check
// names, issuers or dates, only the fingerprint of the key, so the
// certificate is a container for the public key. It is valid from 2000 to
// the RFC 5280 "no expiry" date because boards without a real-time clock
// boot in 1970 and may run for years.
func createCert(path string, key ed25519.PrivateKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("identity: serial: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "camagent " + ShortFingerprint(fingerprintOfKey(pub))},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("identity: create certificate: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return x509.ParseCertificate(der)
}

func fingerprintOfKey(pub ed25519.PublicKey) string {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	return fingerprintOfSPKI(spki)
}

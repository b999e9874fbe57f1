package identity

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreateIsStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	first, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Fingerprint) != FingerprintLen {
		t.Fatalf("fingerprint %q: length %d", first.Fingerprint, len(first.Fingerprint))
	}
	if _, ok := first.Certificate.PrivateKey.(ed25519.PrivateKey); !ok {
		t.Fatalf("private key is %T", first.Certificate.PrivateKey)
	}
	second, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if second.Fingerprint != first.Fingerprint {
		t.Fatalf("fingerprint changed across loads: %s -> %s", first.Fingerprint, second.Fingerprint)
	}
}

func TestLoadOrCreateModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700},
		{filepath.Join(dir, KeyFile), 0o600},
	} {
		info, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != tc.want {
			t.Errorf("%s: mode %o, want %o", tc.path, got, tc.want)
		}
	}
}

func TestLoadOrCreateTightensLooseKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, KeyFile)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %o after load, want 600", info.Mode().Perm())
	}
}

// A lost or garbled certificate is re-issued from the key; the fingerprint,
// which covers only the key, must not change or every pairing would break.
func TestCertificateReissueKeepsFingerprint(t *testing.T) {
	for _, damage := range []struct {
		name string
		do   func(path string) error
	}{
		{"deleted", os.Remove},
		{"garbled", func(p string) error { return os.WriteFile(p, []byte("not pem"), 0o644) }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := LoadOrCreate(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := damage.do(filepath.Join(dir, CertFile)); err != nil {
				t.Fatal(err)
			}
			second, err := LoadOrCreate(dir)
			if err != nil {
				t.Fatal(err)
			}
			if second.Fingerprint != first.Fingerprint {
				t.Fatal("fingerprint changed after certificate re-issue")
			}
		})
	}
}

func TestLoadOrCreateRejectsBadKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil {
		t.Fatal("corrupt key accepted; a silent new key would unpair every viewer")
	}
}

// The agent and a CLI command started together must agree on one key.
func TestLoadOrCreateConcurrentFirstStart(t *testing.T) {
	dir := t.TempDir()
	const n = 4
	fps := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id, err := LoadOrCreate(dir)
			if err != nil {
				t.Error(err)
				return
			}
			fps[i] = id.Fingerprint
		})
	}
	wg.Wait()
	for _, fp := range fps[1:] {
		if fp != fps[0] {
			t.Fatalf("concurrent first start produced different keys: %v", fps)
		}
	}
}

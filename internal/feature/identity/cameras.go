package identity

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/camagent/camagent/internal/base/statefile"
)

// CamerasFile is the known-camera store's name in the viewer's state dir.
const CamerasFile = "cameras.json"

// Camera is one paired camera as a viewer knows it.
type Camera struct {
	Name        string   `json:"name"`
	Fingerprint string   `json:"fingerprint"`
	Addrs       []string `json:"addrs"`
	// Relays are relay URLs from the pairing offer, tried when no address
	// answers (not used yet).
	Relays   []string  `json:"relays,omitempty"`
	PairedAt time.Time `json:"paired_at"`
}

type camerasDoc struct {
	Cameras []Camera `json:"cameras"`
}

// CameraStore is the viewer's list of paired cameras, kept in
// cameras.json. Safe for concurrent use.
type CameraStore struct {
	file *statefile.File[camerasDoc]
}

// OpenCameraStore opens (or prepares to create) the store at path, usually
// CamerasPath(stateDir).
func OpenCameraStore(path string) (*CameraStore, error) {
	f, err := statefile.Open[camerasDoc](path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &CameraStore{file: f}, nil
}

// CamerasPath is the conventional location of the store in stateDir.
func CamerasPath(stateDir string) string { return filepath.Join(stateDir, CamerasFile) }

// Add saves a camera after pairing. An entry with the same name or the same
// fingerprint is replaced: pairing again (a reflashed camera, a rename) is
// a deliberate act backed by a fresh one-time code.
func (s *CameraStore) Add(c Camera) error {
	if err := CheckName(c.Name); err != nil {
		return err
	}
	fp, err := ParseFingerprint(c.Fingerprint)
	if err != nil {
		return err
	}
	c.Fingerprint = fp
	c.Addrs = slices.Clone(c.Addrs)
	c.Relays = slices.Clone(c.Relays)
	err = s.file.Update(func(d *camerasDoc) error {
		d.Cameras = slices.DeleteFunc(d.Cameras, func(o Camera) bool {
			return o.Name == c.Name || o.Fingerprint == c.Fingerprint
		})
		d.Cameras = append(d.Cameras, c)
		return nil
	})
	if err != nil {
		return fmt.Errorf("identity: add camera: %w", err)
	}
	return nil
}

// Get returns the camera called name.
func (s *CameraStore) Get(name string) (Camera, error) {
	var found Camera
	err := s.file.View(func(d camerasDoc) error {
		i := slices.IndexFunc(d.Cameras, func(c Camera) bool { return c.Name == name })
		if i < 0 {
			return fmt.Errorf("camera %q: %w", name, ErrNotFound)
		}
		found = cloneCamera(d.Cameras[i])
		return nil
	})
	return found, err
}

// List returns all cameras in pairing order.
func (s *CameraStore) List() ([]Camera, error) {
	var out []Camera
	err := s.file.View(func(d camerasDoc) error {
		for _, c := range d.Cameras {
			out = append(out, cloneCamera(c))
		}
		return nil
	})
	return out, err
}

// Remove forgets the camera called name.
func (s *CameraStore) Remove(name string) error {
	return s.file.Update(func(d *camerasDoc) error {
		n := len(d.Cameras)
		d.Cameras = slices.DeleteFunc(d.Cameras, func(c Camera) bool { return c.Name == name })
		if len(d.Cameras) == n {
			return fmt.Errorf("camera %q: %w", name, ErrNotFound)
		}
		return nil
	})
}

func cloneCamera(c Camera) Camera {
	c.Addrs = slices.Clone(c.Addrs)
	c.Relays = slices.Clone(c.Relays)
	return c
}

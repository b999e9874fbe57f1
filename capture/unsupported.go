//go:build !linux

package capture

import (
	"errors"
	"fmt"
)

// V4L2 exists only on Linux; elsewhere only the test source works (the
// viewer side of camagent builds on other systems too).

// ListDevices reports that there is no V4L2 on this system.
func ListDevices(devRoot string) ([]Device, error) {
	return nil, fmt.Errorf("list devices: %w", errors.ErrUnsupported)
}

func openDevice(path string, _ Config) (Source, error) {
	return nil, fmt.Errorf("open %s: V4L2 capture: %w", path, errors.ErrUnsupported)
}

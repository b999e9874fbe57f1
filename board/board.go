// Package board reads and drives the camera board's hardware through the
// kernel's interfaces: the device-tree model, thermal zones and the
// Raspberry Pi firmware's throttling flags, status LEDs in /sys/class/leds,
// GPIO lines through the character device, and the hardware watchdog.
// Everything takes a filesystem root ("/" on a board) so that tests run on
// fake trees.
package board

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// modelPaths are where the kernel exposes the device tree's model string;
// /proc/device-tree is a symlink to the second on current kernels.
var modelPaths = []string{
	"sys/firmware/devicetree/base/model",
	"proc/device-tree/model",
}

// Model returns the board's model from the device tree ("Raspberry Pi 4
// Model B Rev 1.5"), or an error wrapping fs.ErrNotExist on machines
// without one (x86 with ACPI).
func Model(root string) (string, error) {
	for _, p := range modelPaths {
		data, err := os.ReadFile(filepath.Join(root, p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("board model: %w", err)
		}
		// Device-tree strings end in NUL.
		return strings.TrimSpace(string(bytes.TrimRight(data, "\x00"))), nil
	}
	return "", fmt.Errorf("board model: no device tree: %w", fs.ErrNotExist)
}

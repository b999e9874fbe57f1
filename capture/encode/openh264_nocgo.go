//go:build !cgo

package encode

const softwareH264Available = false

// newSoftwareH264 fails: openh264 is a C library and this build has no cgo.
func newSoftwareH264(Config) (Encoder, error) { return nil, ErrNoSoftwareH264 }

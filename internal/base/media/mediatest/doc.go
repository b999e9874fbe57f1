// Package mediatest is camagent's test media, in one place: real H.264
// streams made with x264 (embedded, so tests need no paths) and what tests
// take from them: the Annex-B bytes, the access units, the track. Tests
// only.
//
// It imports internal/base/media and internal/base/h264 and nothing else
// of camagent, so any package's tests may use it, including h264's own
// (an external test package) and storage's. Synthetic access units whose
// payload is only a number (stream's, traversal's) stay with their tests:
// they need no decoder.
package mediatest

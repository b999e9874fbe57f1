package h264

// MaxDimension lets the external tests (package h264_test, which use the
// shared test streams of internal/base/media/mediatest, a package that
// imports this one) check ParseSPS's bound.
const MaxDimension = maxDimension

// Package media defines the units that flow from capture through encoding to
// streaming and recording: raw frames, encoded access units and track
// descriptions.
package media

import "time"

// Codec names an encoded video format carried on the wire.
type Codec string

// Codecs carried by camagent.
const (
	CodecH264  Codec = "h264"  // Annex-B access units
	CodecMJPEG Codec = "mjpeg" // one baseline JPEG per frame
)

// PixelFormat names the layout of a captured frame. The values are V4L2
// fourcc strings so that they read the same as v4l2-ctl output.
type PixelFormat string

// Pixel formats camagent can capture or produce.
const (
	PixYUYV  PixelFormat = "YUYV" // packed 4:2:2
	PixNV12  PixelFormat = "NV12" // planar Y + interleaved CbCr 4:2:0
	PixI420  PixelFormat = "YU12" // planar Y, Cb, Cr 4:2:0 (synthetic source)
	PixMJPEG PixelFormat = "MJPG" // motion JPEG, one JPEG per frame
	PixH264  PixelFormat = "H264" // camera-native H.264, Annex-B
)

// Compressed reports whether frames of this format are already encoded.
func (p PixelFormat) Compressed() bool { return p == PixMJPEG || p == PixH264 }

// RawFrame is one frame as captured. Data is owned by the receiver.
type RawFrame struct {
	Format PixelFormat
	Width  int
	Height int
	// Stride is the length in bytes of one row of the first plane; 0 means
	// tightly packed.
	Stride int
	Data   []byte
	// Seq counts frames from the start of capture; a gap means a drop.
	Seq uint64
	// Timestamp is the driver's (kernel monotonic) capture time when known,
	// otherwise the time the frame was read, on the same clock as Captured.
	Timestamp time.Duration
	// Captured is the wall-clock time at which the frame left the driver. It
	// is the origin for latency figures.
	Captured time.Time
}

// AccessUnit is one encoded picture.
type AccessUnit struct {
	Codec Codec
	// Data is an Annex-B access unit (H.264; key frames carry SPS and PPS
	// in band) or a JPEG image (MJPEG).
	Data []byte
	Key  bool
	// PTS is the presentation time relative to the start of the track.
	PTS time.Duration
	// Captured is the wall-clock time of capture, carried to viewers to
	// measure end-to-end latency.
	Captured time.Time
}

// Track describes an encoded video track as announced to viewers.
type Track struct {
	Codec  Codec   `json:"codec"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	FPS    float64 `json:"fps"`
	// SPS and PPS are the H.264 parameter sets without start codes.
	SPS []byte `json:"sps,omitempty"`
	PPS []byte `json:"pps,omitempty"`
}

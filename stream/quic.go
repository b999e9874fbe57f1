package stream

import (
	"time"

	"github.com/quic-go/quic-go"
)

// QUICConfig is the transport configuration of camagent/1 connections, on
// the camera and the viewer alike: keep-alives hold NAT mappings, and the idle timeout notices a
// vanished peer within seconds.
func QUICConfig() *quic.Config {
	return &quic.Config{
		MaxIdleTimeout:        15 * time.Second,
		KeepAlivePeriod:       5 * time.Second,
		MaxIncomingUniStreams: 1000,
		EnableDatagrams:       true,
	}
}

package relayclient

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/masque/profile"
)

// ErrNotRegistered means the relay knows no registration for the secret:
// the camera is down or not (yet) registered there.
var ErrNotRegistered = errors.New("camera not registered at this relay")

// Locate asks the relay r for the current public address of the camera
// whose locator secret r carries; the relay then lets this host's IP
// reach the camera for a short while (docs/relay.md, "Not enumerable").
// The relay's key is pinned. id is not used: a viewer looks a camera up
// without a client certificate, so that the relay cannot tie the
// viewer's key to the cameras it looks up.
func Locate(ctx context.Context, r RelayURL, id *identity.Identity) (netip.AddrPort, error) {
	_ = id // deliberately never presented
	if r.Secret == nil {
		return netip.AddrPort{}, fmt.Errorf("relay %s: url has no camera locator (rv=)", r.Addr)
	}
	qconn, err := quic.DialAddr(ctx, r.Addr, r.tlsConfig(nil), profile.QUICConfig())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("relay %s: %w", r.Addr, err)
	}
	defer qconn.CloseWithError(0, "")
	cc := (&http3.Transport{}).NewClientConn(qconn)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"https://"+r.Addr+"/.well-known/camagent/locate/"+hex.EncodeToString(r.Secret), nil)
	if err != nil {
		return netip.AddrPort{}, err
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("relay %s: %w", r.Addr, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
	case http.StatusNotFound:
		return netip.AddrPort{}, fmt.Errorf("relay %s: %w", r.Addr, ErrNotRegistered)
	default:
		return netip.AddrPort{}, fmt.Errorf("relay %s: locate: %s", r.Addr, resp.Status)
	}
	addrs, err := profile.ParsePublicAddress(resp.Header)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("relay %s: %w", r.Addr, err)
	}
	return addrs[0], nil
}

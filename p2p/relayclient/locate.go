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
// whose locator secret r carries. id is the viewer's key (presented, not
// required). The relay's key is pinned.
func Locate(ctx context.Context, r RelayURL, id *identity.Identity) (netip.AddrPort, error) {
	if r.Secret == nil {
		return netip.AddrPort{}, fmt.Errorf("relay %s: url has no camera locator (rv=)", r.Addr)
	}
	qconn, err := quic.DialAddr(ctx, r.Addr, r.tlsConfig(id), profile.QUICConfig())
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

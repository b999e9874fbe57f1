package relayserver

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/dunglas/httpsfv"
)

// proxyName identifies the relay in Proxy-Status (RFC 9209 section 2).
const proxyName = "camagent-relay"

// RFC 9209 section 2.3 error types the relay uses.
const (
	proxyErrDestinationIPProhibited = "destination_ip_prohibited"
	proxyErrDNS                     = "dns_error"
	proxyErrRequest                 = "http_request_error"
	proxyErrDenied                  = "http_request_denied"
	proxyErrLimit                   = "connection_limit_reached"
	proxyErrInternal                = "proxy_internal_error"
)

// proxyErrorFor is the default error type of a refusal with this status.
func proxyErrorFor(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return proxyErrRequest
	case http.StatusUnauthorized:
		return proxyErrDenied
	case http.StatusForbidden:
		return proxyErrDestinationIPProhibited
	case http.StatusTooManyRequests:
		return proxyErrLimit
	case http.StatusBadGateway:
		return proxyErrDNS
	default:
		return proxyErrInternal
	}
}

// writeRefusal answers a refused request: the status, a Proxy-Status
// header with the RFC 9209 error type (and the reason as details, RFC
// 9209 section 2.1.5), WWW-Authenticate on 401 (RFC 9110 section
// 11.6.1; the relay takes Bearer tokens, RFC 6750) and Allow on 405 (RFC
// 9110 section 15.5.6).
func writeRefusal(w http.ResponseWriter, status int, proxyErr, details, allow string) {
	h := w.Header()
	if proxyErr == "" {
		proxyErr = proxyErrorFor(status)
	}
	h.Set("Proxy-Status", formatProxyStatus(proxyErr, details))
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="camagent-relay"`)
	case http.StatusMethodNotAllowed:
		h.Set("Allow", allow)
	}
	w.WriteHeader(status)
}

// formatProxyStatus renders one Proxy-Status member: the relay's name with
// error and details parameters (an sf-list, RFC 9209 section 2).
func formatProxyStatus(proxyErr, details string) string {
	p := httpsfv.NewParams()
	p.Add("error", httpsfv.Token(proxyErr))
	if details = printable(details); details != "" {
		p.Add("details", details)
	}
	item := httpsfv.NewItem(httpsfv.Token(proxyName))
	item.Params = p
	s, err := httpsfv.Marshal(httpsfv.List{item})
	if err != nil {
		return proxyName + "; error=" + proxyErr
	}
	return s
}

// printable keeps what an sf-string may hold (printable ASCII) and bounds
// it.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 200 {
			break
		}
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// remoteAddr is a request's source address (RemoteAddr is the QUIC
// connection's remote address).
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

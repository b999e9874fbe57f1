package relayserver

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/dunglas/httpsfv"
	"github.com/quic-go/quic-go/http3"
)

// connectRequest is a validated CONNECT-UDP request.
type connectRequest struct {
	bind   bool
	target string // host:port when !bind
}

// httpError is a request refused with an HTTP status and the RFC 9209
// error type that goes into its Proxy-Status header (status.go).
type httpError struct {
	status   int
	proxyErr string // RFC 9209 section 2.3 error type; "" picks one by status
	msg      string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func refuse(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// refuseAs is refuse with an explicit Proxy-Status error type.
func refuseAs(status int, proxyErr, format string, args ...any) error {
	return &httpError{status: status, proxyErr: proxyErr, msg: fmt.Sprintf(format, args...)}
}

// parseConnectRequest checks the parts of an Extended CONNECT request that
// RFC 9298 section 3.4 and the listen draft section 4 fix.
func parseConnectRequest(r *http.Request) (connectRequest, error) {
	if r.Method != http.MethodConnect {
		return connectRequest{}, refuse(http.StatusMethodNotAllowed, "method %s, want CONNECT", r.Method)
	}
	if r.Proto != "connect-udp" {
		return connectRequest{}, refuse(http.StatusBadRequest, ":protocol %q, want connect-udp", r.Proto)
	}
	// Capsule-Protocol is optional (RFC 9297 section 3.4: it only tells
	// intermediaries that the stream carries capsules; CONNECT-UDP implies
	// the capsule protocol anyway), and clients such as masque-go's do not
	// always send it. Present, it must be a valid boolean; the relay
	// always speaks the capsule protocol and says so in its response.
	if _, err := sfvBool(r.Header, http3.CapsuleProtocolHeader); err != nil {
		return connectRequest{}, refuse(http.StatusBadRequest, "Capsule-Protocol: %v", err)
	}
	host, port, err := templateTarget(r.URL.Path)
	if err != nil {
		return connectRequest{}, refuse(http.StatusBadRequest, "%v", err)
	}
	bind, err := sfvBool(r.Header, profile.HeaderBind)
	if err != nil {
		return connectRequest{}, refuse(http.StatusBadRequest, "%s: %v", profile.HeaderBind, err)
	}
	if bind {
		// Listen draft section 4: both or neither are "*"; only both
		// (no default target) is offered here.
		if host != "*" || port != "*" {
			return connectRequest{}, refuse(http.StatusBadRequest, "bind needs target host and port both \"*\"")
		}
		return connectRequest{bind: true}, nil
	}
	if host == "*" || port == "*" {
		return connectRequest{}, refuse(http.StatusBadRequest, "wildcard target without %s", profile.HeaderBind)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return connectRequest{}, refuse(http.StatusBadRequest, "target port %q", port)
	}
	return connectRequest{target: netJoin(host, port)}, nil
}

func netJoin(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// templateTarget extracts {target_host} and {target_port} from a path that
// follows the default template (the URL parser has already decoded %2A
// and %3A).
func templateTarget(path string) (host, port string, err error) {
	rest, ok := strings.CutPrefix(path, profile.MasquePrefix)
	if !ok {
		return "", "", errors.New("not the connect-udp template")
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "" || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("path %q does not match %s{host}/{port}/", path, profile.MasquePrefix)
	}
	return parts[0], parts[1], nil
}

// sfvBool parses a header that is a structured-field Boolean Item (RFC
// 8941 section 3.3.6); absent means false.
func sfvBool(h http.Header, name string) (bool, error) {
	v := h.Values(name)
	if len(v) == 0 {
		return false, nil
	}
	item, err := httpsfv.UnmarshalItem(v)
	if err != nil {
		return false, err
	}
	b, ok := item.Value.(bool)
	if !ok {
		return false, fmt.Errorf("not a boolean: %q", strings.Join(v, ","))
	}
	return b, nil
}

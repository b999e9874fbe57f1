package relay

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
	"github.com/quic-go/quic-go/http3"
)

// The default URI template of RFC 9298 section 3:
// https://$PROXY/.well-known/masque/udp/{target_host}/{target_port}/
const masquePrefix = "/.well-known/masque/udp/"

// Header names of draft-ietf-masque-connect-udp-listen-14 section 4.
const (
	HeaderBind          = "Connect-UDP-Bind"
	HeaderPublicAddress = "Proxy-Public-Address"
	// HeaderLocator carries the SHA-256 (hex) of the camera's locator
	// secret, under which viewers find this registration (docs/relay.md).
	HeaderLocator = "Camagent-Locator"
	// HeaderObservedAddress, in a bind response, is the address the relay
	// sees the registering connection come from, in the format of
	// Proxy-Public-Address: for a camera that registers from its QUIC
	// socket, the public side of its NAT mapping, which it advertises as a
	// reflexive candidate (docs/nat-traversal.md §6). It plays the role of
	// OBSERVED_ADDRESS (draft-ietf-quic-address-discovery), which quic-go
	// cannot send.
	HeaderObservedAddress = "Camagent-Observed-Address"
)

// connectRequest is a validated CONNECT-UDP request.
type connectRequest struct {
	bind   bool
	target string // host:port when !bind
}

// httpError is a request refused with an HTTP status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func refuse(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
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
	if !sfvTrue(r.Header, http3.CapsuleProtocolHeader) {
		return connectRequest{}, refuse(http.StatusBadRequest, "Capsule-Protocol: ?1 missing")
	}
	host, port, err := templateTarget(r.URL.Path)
	if err != nil {
		return connectRequest{}, refuse(http.StatusBadRequest, "%v", err)
	}
	bind, err := sfvBool(r.Header, HeaderBind)
	if err != nil {
		return connectRequest{}, refuse(http.StatusBadRequest, "%s: %v", HeaderBind, err)
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
		return connectRequest{}, refuse(http.StatusBadRequest, "wildcard target without %s", HeaderBind)
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
	rest, ok := strings.CutPrefix(path, masquePrefix)
	if !ok {
		return "", "", errors.New("not the connect-udp template")
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "" || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("path %q does not match %s{host}/{port}/", path, masquePrefix)
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

func sfvTrue(h http.Header, name string) bool {
	b, err := sfvBool(h, name)
	return err == nil && b
}

// FormatPublicAddress renders the Proxy-Public-Address field: an sf-list
// of sf-strings, "ip:port" or "[ipv6]:port" (listen draft section 4.1).
func FormatPublicAddress(addrs ...netip.AddrPort) string {
	list := make(httpsfv.List, 0, len(addrs))
	for _, a := range addrs {
		list = append(list, httpsfv.NewItem(a.String()))
	}
	s, _ := httpsfv.Marshal(list) // strings of printable ASCII always marshal
	return s
}

// ParsePublicAddress parses Proxy-Public-Address.
func ParsePublicAddress(h http.Header) ([]netip.AddrPort, error) {
	return parseAddressList(h, HeaderPublicAddress)
}

// ParseObservedAddress parses Camagent-Observed-Address.
func ParseObservedAddress(h http.Header) ([]netip.AddrPort, error) {
	return parseAddressList(h, HeaderObservedAddress)
}

func parseAddressList(h http.Header, name string) ([]netip.AddrPort, error) {
	v := h.Values(name)
	if len(v) == 0 {
		return nil, fmt.Errorf("no %s", name)
	}
	list, err := httpsfv.UnmarshalList(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []netip.AddrPort
	for _, m := range list {
		item, ok := m.(httpsfv.Item)
		if !ok {
			return nil, fmt.Errorf("%s: inner list", name)
		}
		s, ok := item.Value.(string)
		if !ok {
			return nil, fmt.Errorf("%s: member is not a string", name)
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, ap)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", name)
	}
	return out, nil
}

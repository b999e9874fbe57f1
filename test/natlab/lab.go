//go:build linux

package natlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Kind is how one side (camera or viewer) is attached to the internet.
type Kind string

// The NAT kinds of the matrix (RFC 4787 terms in the comments).
const (
	// Public: the host has a public address, no NAT, no firewall.
	Public Kind = "public"
	// FullCone: endpoint-independent mapping and filtering; a Linux
	// masquerade plus a dnat rule forwarding every UDP port to the host.
	FullCone Kind = "full-cone"
	// PortRestricted: endpoint-independent mapping, address-and-port
	// dependent filtering; Linux masquerade behind a stateful firewall,
	// the common home router.
	PortRestricted Kind = "port-restricted"
	// Symmetric: address-and-port dependent mapping; masquerade with
	// random,fully-random picks a new port for every destination.
	Symmetric Kind = "symmetric"
	// CGNAT: two port-restricted NATs in a row (home router behind a
	// carrier-grade NAT on 100.64.0.0/10).
	CGNAT Kind = "cgnat"
)

// Kinds lists every Kind in matrix order.
var Kinds = []Kind{Public, FullCone, PortRestricted, Symmetric, CGNAT}

// IndependentMapping reports whether k keeps one public address and port
// for a host socket whatever the destination (punchable by address).
func (k Kind) IndependentMapping() bool { return k != Symmetric }

// IndependentFiltering reports whether k lets in packets from anyone to a
// mapped port, so the peer need not be punched toward first.
func (k Kind) IndependentFiltering() bool { return k == Public || k == FullCone }

// DirectPossible reports whether a direct path can exist between a camera
// behind a and a viewer behind b: at least one mapping is
// endpoint-independent. Both are: each side punches toward the other's
// reflexive address. One side filters independently: the other side's
// packets, from whatever port its NAT picks, get in, and the answer goes
// back through the mapping they opened. Only one maps independently and
// filters by port: port spraying (p2p/portspray) finds one of the other
// side's many mappings. Two symmetric NATs have no direct path to find.
func DirectPossible(a, b Kind) bool {
	return a.IndependentMapping() || b.IndependentMapping() ||
		a.IndependentFiltering() || b.IndependentFiltering()
}

// Addresses of the lab: documentation ranges on the "internet" (RFC 5737),
// private ranges behind the routers, the shared range (RFC 6598) between a
// carrier NAT and the home router behind it.
var (
	RelayAddr = netip.MustParseAddr("192.0.2.1")
)

// CameraPort is the agent's listening port (its default); the viewer's
// socket has an ephemeral port, as in the product. RelayPort is the
// relay's.
const (
	CameraPort = 4433
	RelayPort  = 443
)

// side describes one side's address plan.
type side struct {
	name   string // "cam" or "view"
	wanIf  string // the wan namespace's interface toward this side
	public string // /24 on the internet: .1 is wan, .2 the side's outermost box
	cgn    string // /24 between carrier NAT and home router
	lan    string // the home LAN: .1 router, .2 host (.3 a second host)
}

var (
	cameraSide = side{name: "cam", wanIf: "tocam", public: "203.0.113", cgn: "100.64.0", lan: "192.168.1"}
	viewerSide = side{name: "view", wanIf: "toview", public: "198.51.100", cgn: "100.64.1", lan: "10.0.0"}
)

// Lab is one topology: a wan namespace with the relay, and the camera's
// and viewer's namespaces behind their routers.
type Lab struct {
	id     string
	nsList []string // created, deleted by Close in reverse order
	// WAN, Camera and Viewer are the namespaces the roles run in.
	WAN, Camera, Viewer string
	// CameraAddr and ViewerAddr are the hosts' own addresses (on their
	// LAN, or on the internet when Public); CameraWAN and ViewerWAN are
	// their outermost router's address on the internet (the host's own
	// when Public): where a NAT maps them to.
	CameraAddr, ViewerAddr netip.Addr
	CameraWAN, ViewerWAN   netip.Addr
}

// New builds a lab with the camera behind cam and the viewer behind view.
// If hairpin is set both hosts sit on one LAN behind a single
// port-restricted router (cam and view are ignored). On error the
// namespaces made so far are removed.
func New(cam, view Kind, hairpin bool) (l *Lab, err error) {
	var b [3]byte
	rand.Read(b[:])
	// Unique per lab so reruns and leftovers of a crashed run never clash.
	l = &Lab{id: "nl" + hex.EncodeToString(b[:])}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	if l.WAN, err = l.namespace("wan"); err != nil {
		return
	}
	err = l.wanSetup()
	if err == nil && hairpin {
		err = l.hairpin()
		return
	}
	if err == nil {
		l.Camera, l.CameraAddr, l.CameraWAN, err = l.buildSide(cameraSide, cam)
	}
	if err == nil {
		l.Viewer, l.ViewerAddr, l.ViewerWAN, err = l.buildSide(viewerSide, view)
	}
	return
}

// Forward sets whether the wan namespace routes between the sides. New
// turns it on; a lab in which everything must end at the relay (no direct
// path can exist at all, whatever the NATs) turns it off.
func (l *Lab) Forward(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return sysctl(l.WAN, "net/ipv4/ip_forward", v)
}

// Cut drops, in the wan namespace, every packet between internet
// addresses a and b, both ways: the direct path between two sides goes
// away while the relay stays reachable from both.
func (l *Lab) Cut(a, b netip.Addr) error {
	return nft(l.WAN, fmt.Sprintf(`table inet cut {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip saddr %[1]s ip daddr %[2]s drop
		ip saddr %[2]s ip daddr %[1]s drop
	}
}
`, a, b))
}

// Reachable reports whether a UDP packet sent from namespace ns to addr
// would leave with a route: the kernel has one to addr's network.
func (l *Lab) Reachable(ns string, addr netip.AddrPort) bool {
	return InNamespace(ns, func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
		if err == nil {
			c.Close()
		}
		return err
	}) == nil
}

// Close deletes every namespace of the lab, which also destroys their
// interfaces, nftables tables and conntrack entries.
func (l *Lab) Close() error {
	var errs []error
	for i := len(l.nsList) - 1; i >= 0; i-- {
		if err := run("ip", "netns", "del", l.nsList[i]); err != nil {
			errs = append(errs, err)
		}
	}
	l.nsList = nil
	return errors.Join(errs...)
}

func (l *Lab) namespace(role string) (string, error) {
	name := l.id + "-" + role
	if err := run("ip", "netns", "add", name); err != nil {
		return "", err
	}
	l.nsList = append(l.nsList, name)
	return name, run("ip", "-n", name, "link", "set", "lo", "up")
}

// wanSetup puts the relay address on the wan namespace's loopback and
// lets it route between the sides.
func (l *Lab) wanSetup() error {
	if err := run("ip", "-n", l.WAN, "addr", "add", RelayAddr.String()+"/32", "dev", "lo"); err != nil {
		return err
	}
	return sysctl(l.WAN, "net/ipv4/ip_forward", "1")
}

// veth joins namespace a (interface aIf, address aAddr) and b; an address
// is "prefix/len" or "" for none.
func veth(a, aIf, aAddr, b, bIf, bAddr string) error {
	if err := run("ip", "-n", a, "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b); err != nil {
		return err
	}
	for _, e := range []struct{ ns, ifc, addr string }{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if e.addr != "" {
			if err := run("ip", "-n", e.ns, "addr", "add", e.addr, "dev", e.ifc); err != nil {
				return err
			}
		}
		if err := run("ip", "-n", e.ns, "link", "set", e.ifc, "up"); err != nil {
			return err
		}
	}
	return nil
}

func defaultRoute(ns, via string) error {
	return run("ip", "-n", ns, "route", "add", "default", "via", via)
}

// buildSide makes the namespaces of one side and returns the host's,
// the host's address and its address on the internet.
func (l *Lab) buildSide(s side, k Kind) (ns string, addr, wan netip.Addr, err error) {
	wan = netip.MustParseAddr(s.public + ".2")
	if k == Public {
		addr = wan
	} else {
		addr = netip.MustParseAddr(s.lan + ".2")
	}
	ns, err = l.buildSideNS(s, k)
	return ns, addr, wan, err
}

func (l *Lab) buildSideNS(s side, k Kind) (string, error) {
	host, err := l.namespace(s.name)
	if err != nil {
		return "", err
	}
	if k == Public {
		if err := veth(l.WAN, s.wanIf, s.public+".1/24", host, "eth0", s.public+".2/24"); err != nil {
			return "", err
		}
		return host, defaultRoute(host, s.public+".1")
	}
	// The router the host sits behind, and whatever is in front of it.
	router, err := l.namespace(s.name + "r")
	if err != nil {
		return "", err
	}
	if k == CGNAT {
		carrier, err := l.namespace(s.name + "c")
		if err != nil {
			return "", err
		}
		if err := l.router(carrier, s.wanIf, s.public, natRules(PortRestricted, "")); err != nil {
			return "", err
		}
		if err := veth(carrier, "lan0", s.cgn+".1/24", router, "eth0", s.cgn+".2/24"); err != nil {
			return "", err
		}
		if err := defaultRoute(router, s.cgn+".1"); err != nil {
			return "", err
		}
	} else if err := l.router(router, s.wanIf, s.public, ""); err != nil {
		return "", err
	}
	if err := veth(router, "lan0", s.lan+".1/24", host, "eth0", s.lan+".2/24"); err != nil {
		return "", err
	}
	if err := defaultRoute(host, s.lan+".1"); err != nil {
		return "", err
	}
	return host, l.nat(router, natRules(k, s.lan+".2"))
}

// router links ns to wan on public.2 with a default route; if rules is
// set it also enables forwarding and loads them (the carrier NAT, whose
// LAN link the caller makes).
func (l *Lab) router(ns, wanIf, public, rules string) error {
	if err := veth(l.WAN, wanIf, public+".1/24", ns, "eth0", public+".2/24"); err != nil {
		return err
	}
	if err := defaultRoute(ns, public+".1"); err != nil {
		return err
	}
	if rules != "" {
		return l.nat(ns, rules)
	}
	return nil
}

// nat turns ns into a NAT router with the given nftables ruleset.
func (l *Lab) nat(ns, rules string) error {
	if err := sysctl(ns, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	return nft(ns, rules)
}

// nft loads an nftables ruleset in namespace ns.
func nft(ns, rules string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s\n%s", ns, err, out, rules)
	}
	return nil
}

// hairpin puts camera and viewer on one LAN (a bridge in the router)
// behind one port-restricted NAT: a same-LAN viewer.
func (l *Lab) hairpin() error {
	s := cameraSide
	router, err := l.namespace("homer")
	if err != nil {
		return err
	}
	if err := l.router(router, s.wanIf, s.public, ""); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"link", "add", "br0", "type", "bridge"},
		{"addr", "add", s.lan + ".1/24", "dev", "br0"},
		{"link", "set", "br0", "up"},
	} {
		if err := run("ip", append([]string{"-n", router}, c...)...); err != nil {
			return err
		}
	}
	for i, role := range []string{"cam", "view"} {
		host, err := l.namespace(role)
		if err != nil {
			return err
		}
		port := fmt.Sprintf("lan%d", i)
		if err := veth(router, port, "", host, "eth0", fmt.Sprintf("%s.%d/24", s.lan, i+2)); err != nil {
			return err
		}
		if err := run("ip", "-n", router, "link", "set", port, "master", "br0"); err != nil {
			return err
		}
		if err := defaultRoute(host, s.lan+".1"); err != nil {
			return err
		}
		addr := netip.MustParseAddr(fmt.Sprintf("%s.%d", s.lan, i+2))
		if role == "cam" {
			l.Camera, l.CameraAddr = host, addr
		} else {
			l.Viewer, l.ViewerAddr = host, addr
		}
	}
	l.CameraWAN = netip.MustParseAddr(s.public + ".2")
	l.ViewerWAN = l.CameraWAN
	return l.nat(router, natRules(PortRestricted, ""))
}

// natRules is the nftables ruleset of a router whose internet side is
// eth0. forward is the host a full-cone router forwards every inbound
// UDP port to (the same port: the host's socket's port, which masquerade
// preserves).
//
// The firewall drops unsolicited inbound packets, as home routers do. It
// also matters for punching (../shared/research/netlab.md): without it a
// peer's punch that arrives before our own outbound packet is taken by the
// router's own stack and its conntrack entry confirmed; our outbound
// packet then clashes with it and is given a random port.
func natRules(k Kind, forward string) string {
	masq := "masquerade"
	if k == Symmetric {
		masq = "masquerade random,fully-random"
	}
	var pre, accept string
	if k == FullCone {
		pre = fmt.Sprintf("chain pre {\n\t\ttype nat hook prerouting priority -100;\n\t\tiifname \"eth0\" meta l4proto udp dnat to %s\n\t}", forward)
		accept = `iifname "eth0" ct status dnat accept`
	}
	return fmt.Sprintf(`table ip nat {
	chain post {
		type nat hook postrouting priority 100;
		oifname "eth0" %s
	}
	%s
}
table inet fw {
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "eth0" ct state new drop
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "eth0" ct state established,related accept
		%s
		iifname "eth0" drop
	}
}
`, masq, pre, accept)
}

// sysctl writes a /proc/sys/net value of namespace ns: the files show the
// namespace of the thread that opens them.
func sysctl(ns, key, value string) error {
	return InNamespace(ns, func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(value), 0)
	})
}

// InNamespace runs fn on an OS thread that has entered network namespace
// ns. Sockets fn opens stay in ns for their whole life, whichever thread
// later uses them, so the roles open their sockets here and run as
// ordinary goroutines. The thread is never unlocked: Go discards it when
// the goroutine ends instead of reusing it in the wrong namespace.
func InNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func run(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

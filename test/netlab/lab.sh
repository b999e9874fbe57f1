# Sourced by the netlab scripts (relay.sh, direct.sh): checks for root and
# network namespaces (skipping cleanly without them), then builds the lab:
#
#   wan (relay 203.0.113.1:4443, also 198.51.100.1)
#    |- natc 203.0.113.2 | 192.168.1.1 -- cam   192.168.1.2  (home NAT)
#    '- natp 198.51.100.2 | 10.0.0.1   -- phone 10.0.0.2     (carrier NAT)
#
# Both routers masquerade and drop unsolicited inbound packets, as home
# routers do (see netlab.md: without that, hole punching fails for the
# wrong reason). The caller sets lab (its name, for messages and out/) and
# prefix (two letters for its namespaces) first. It gets $bin, $work, $out,
# the namespace names, nsx, the pids array and the cleanup trap.
if [ "$(id -u)" -ne 0 ]; then
	echo "$lab: skipped: needs root (network namespaces, nftables)" >&2
	exit 0
fi
if ! ip netns add "probe$$" 2>/dev/null; then
	echo "$lab: skipped: cannot create network namespaces here" >&2
	exit 0
fi
ip netns del "probe$$"

bin=$(pwd)/bin/camagent
work=$(pwd)/out/$lab
out=$(pwd)/out/$lab.mp4
rm -rf "$work" "$out"
mkdir -p "$work"
p="$prefix$$" # namespace prefix: parallel runs do not collide
wan=${p}wan natc=${p}natc cam=${p}cam natp=${p}natp phone=${p}phone
pids=()

cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	for ns in $wan $natc $cam $natp $phone; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

for ns in $wan $natc $cam $natp $phone; do
	ip netns add "$ns"
	nsx "$ns" ip link set lo up
done
link() { # link NS1 IF1 ADDR1 NS2 IF2 ADDR2
	ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
	nsx "$1" ip addr add "$3" dev "$2"; nsx "$1" ip link set "$2" up
	nsx "$4" ip addr add "$6" dev "$5"; nsx "$4" ip link set "$5" up
}
link $wan w0 203.0.113.1/24 $natc c0 203.0.113.2/24
link $natc c1 192.168.1.1/24 $cam e0 192.168.1.2/24
link $wan w1 198.51.100.1/24 $natp p0 198.51.100.2/24
link $natp p1 10.0.0.1/24 $phone e0 10.0.0.2/24
nsx $cam ip route add default via 192.168.1.1
nsx $phone ip route add default via 10.0.0.1
nsx $natc ip route add default via 203.0.113.1
nsx $natp ip route add default via 198.51.100.1

router() { # router NS WAN_IF: masquerade out of WAN_IF, drop unsolicited inbound
	nsx "$1" sysctl -qw net.ipv4.ip_forward=1
	nsx "$1" nft -f - <<NFT
table ip nat {
  chain post {
    type nat hook postrouting priority 100; policy accept;
    oifname "$2" masquerade
  }
}
table inet fw {
  chain input {
    type filter hook input priority 0; policy accept;
    iifname "$2" ct state new drop
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "$2" ct state established,related accept
    iifname "$2" drop
  }
}
NFT
}
router $natc c0
router $natp p0

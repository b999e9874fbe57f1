#!/usr/bin/env bash
# make netlab-direct: the lab of netlab-direct (camera behind a home NAT,
# viewer behind a carrier NAT, both endpoint-independent mapping with
# port-restricted filtering, MASQUE relay on the "internet"), with real
# kernel NAT (nftables). The viewer knows only the relay and connects
# through it; NAT traversal must move the live connection to the direct
# path. Then the direct path is cut in the "internet" and the viewer must
# fall back to the relay without losing the stream. 10 s go to
# out/netlab-direct.mp4, checked by ffprobe; the last line is JSON with the
# time to direct, the relay's byte share while direct and the fallback time.
#
#   wan (relay 203.0.113.1:4443, also 198.51.100.1)
#    |- natc 203.0.113.2 | 192.168.1.1 -- cam   192.168.1.2  (home NAT)
#    '- natp 198.51.100.2 | 10.0.0.1   -- phone 10.0.0.2     (carrier NAT)
set -euo pipefail
cd "$(dirname "$0")/../.."

lab=netlab-direct prefix=nd
# shellcheck source=test/netlab/lab.sh
. test/netlab/lab.sh
# The "internet" routes between the two NATs (netlab-relay never needs it:
# everything there ends at the relay).
nsx $wan sysctl -qw net.ipv4.ip_forward=1

# The camera cannot be reached from the internet: check the NAT really works.
if nsx $phone timeout 1 bash -c 'echo x >/dev/udp/192.168.1.2/4433' 2>/dev/null && \
	nsx $wan ping -c1 -W1 192.168.1.2 >/dev/null 2>&1; then
	echo "netlab-direct: camera reachable without NAT: lab broken" >&2; exit 1
fi

token=netlab-$RANDOM$RANDOM
relay_state=$work/relay-state
ip netns exec $wan "$bin" relay --listen 203.0.113.1:4443 --state-dir "$relay_state" --token "$token" \
	--allow-target 203.0.113.0/24 --allow-target 198.51.100.0/24 \
	--metrics 127.0.0.1:9464 >"$work/relay.url" 2>>"$work/relay.log" &
pids+=("$!")
for _ in $(seq 100); do grep -q 'relay url:' "$work/relay.url" && break; sleep 0.05; done
relay_url=$(sed -n 's/^relay url: //p' "$work/relay.url")
[ -n "$relay_url" ] || { echo "netlab-direct: relay did not start" >&2; cat "$work/relay.log" >&2; exit 1; }
relay_metric() { # relay_metric NAME-WITH-LABELS: value from the live relay
	nsx $wan timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3' |
		awk -v m="$1" '$1==m {print $2}'
}
from_camera='camagent_relay_bytes_total{direction="from_camera"}'

cam_flags=(--config /dev/null --name porch --state-dir "$work/cam-state" --listen 192.168.1.2:4433
	--capture.device test --capture.width 640 --capture.height 360 --capture.fps 30
	--encode.codec h264 --encode.keyframe-interval 30 --relay.urls "$relay_url" --relay.token "$token" --log.level debug)
: >"$work/agent.log"
ip netns exec $cam "$bin" agent "${cam_flags[@]}" 2>"$work/agent.log" &
pids+=("$!")
public="" observed=""
for _ in $(seq 200); do
	line=$(grep 'msg="registered with relay"' "$work/agent.log" | tail -1 || true)
	public=$(sed -n 's/.* public=\([0-9.:]*\).*/\1/p' <<<"$line")
	observed=$(sed -n 's/.* observed=\([0-9.:]*\).*/\1/p' <<<"$line")
	[ -n "$public" ] && grep -q 'msg=streaming' "$work/agent.log" && break
	sleep 0.1
done
[ -n "$public" ] || { echo "netlab-direct: camera did not register" >&2; cat "$work/agent.log" >&2; exit 1; }
echo "camera registered at $public; the relay sees its QUIC socket at $observed" >&2
case "$observed" in 203.0.113.2:*) ;; *) echo "netlab-direct: relay observed $observed, not the home NAT" >&2; exit 1 ;; esac

# The default offer: the camera's LAN address, its public address at the
# relay (raddr, from the agent's public.json) and the relay URL with the
# camera's locator secret; join finds the camera from it alone.
uri=$(nsx $cam "$bin" pair "${cam_flags[@]}" --uri-only)
grep -qF "raddr=$public" <<<"$uri" || { echo "netlab-direct: offer lacks the public address $public: $uri" >&2; exit 1; }
nsx $phone "$bin" join "$uri" --state-dir "$work/phone-state" --as phone >&2

# --via relay: the camera's LAN address is no use from the carrier NAT;
# the viewer starts on the relay and must find the direct path itself.
ip netns exec $phone "$bin" view porch --state-dir "$work/phone-state" --via relay -q --log-level debug \
	-o "$out" --duration 10s --summary "$work/summary.json" 2>"$work/view.log" &
view_pid=$!
pids+=("$view_pid")

# Wait for the switch, let what was in flight through the relay arrive,
# then count what the relay forwards from the camera while direct.
for _ in $(seq 100); do grep -q '^path: direct' "$work/view.log" && break; sleep 0.05; done
grep -q '^path: direct' "$work/view.log" || { echo "netlab-direct: FAIL: viewer never went direct" >&2; cat "$work/view.log" >&2; tail -20 "$work/agent.log" >&2; exit 1; }
sleep 0.5
relay_direct_start=$(relay_metric "$from_camera")
t_direct_start=$(date +%s.%N)
sleep 4
relay_direct_end=$(relay_metric "$from_camera")
t_direct_end=$(date +%s.%N)

# Cut the direct path in the internet (both directions); the relay's
# address stays reachable.
nsx $wan nft -f - <<NFT
table inet cut {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ip saddr 203.0.113.2 ip daddr 198.51.100.2 drop
    ip saddr 198.51.100.2 ip daddr 203.0.113.2 drop
  }
}
NFT
t_cut=$(date +%s.%N)
for _ in $(seq 100); do grep -q 'back on the relay' "$work/view.log" && break; sleep 0.02; done
t_back=$(date +%s.%N)
grep -q 'back on the relay' "$work/view.log" || { echo "netlab-direct: FAIL: no fallback to the relay" >&2; cat "$work/view.log" >&2; exit 1; }
fallback_ms=$(awk -v a="$t_cut" -v b="$t_back" 'BEGIN { printf "%.0f", (b-a)*1000 }')

wait "$view_pid" || { echo "netlab-direct: viewer failed" >&2; cat "$work/view.log" >&2; exit 1; }

probe=$(ffprobe -v error -count_frames -select_streams v:0 \
	-show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 "$out")
IFS=, read -r codec width height frames <<<"$probe"
summary=$(cat "$work/summary.json")
num() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<<"$summary"; }
ttd=$(num time_to_direct_ms) kbps=$(num kbps) fallbacks=$(num fallbacks_to_relay)
bytes_direct=$(num bytes_direct) bytes_relay=$(num bytes_relay)
# The relay's share while direct: what it forwarded from the camera in 4 s
# of the direct phase, against the stream's bitrate over the same time.
relay_share=$(awk -v r=$((relay_direct_end - relay_direct_start)) -v k="$kbps" -v a="$t_direct_start" -v b="$t_direct_end" \
	'BEGIN { media = k*1000/8*(b-a); printf "%.4f", r/(r+media) }')
echo "ffprobe: $probe; viewer: $summary; relay bytes while direct: $((relay_direct_end - relay_direct_start))" >&2
fail=""
[ "$codec" = h264 ] && [ "$width" = 640 ] && [ "$height" = 360 ] || fail="wrong stream $probe"
[ "${frames:-0}" -ge 250 ] || fail="only ${frames:-0} frames"
[ -n "$ttd" ] || fail="no time to direct in the summary"
awk -v t="${ttd:-1e9}" 'BEGIN { exit !(t < 5000) }' || fail="direct after ${ttd} ms, limit 5 s"
awk -v s="$relay_share" 'BEGIN { exit !(s <= 0.01) }' || fail="relay carried ${relay_share} of the stream while direct, limit 0.01"
# 4.5 s of direct phase at the test pattern's ~130 kbit/s is ~70 kB.
[ "${bytes_direct:-0}" -gt 40000 ] || fail="only ${bytes_direct:-0} bytes on the direct path"
[ "${fallbacks:-0}" -ge 1 ] || fail="no fallback counted"
[ "$fallback_ms" -lt 1500 ] || fail="fell back after ${fallback_ms} ms, limit 1.5 s"
grep -q '"path":"relay"' <<<"$summary" || fail="viewer did not end on the relay"
if [ -n "$fail" ]; then
	echo "netlab-direct: FAIL: $fail" >&2
	tail -20 "$work/agent.log" "$work/view.log" >&2
	exit 1
fi
printf '{"result":"pass","output":"%s","codec":"%s","width":%s,"height":%s,"frames":%s,"time_to_direct_ms":%s,"relay_share_while_direct":%s,"bytes_direct":%s,"bytes_relay":%s,"fallback_ms":%s,"camera_reflexive":"%s"}\n' \
	"$out" "$codec" "$width" "$height" "$frames" "$ttd" "$relay_share" "$bytes_direct" "$bytes_relay" "$fallback_ms" "$observed"

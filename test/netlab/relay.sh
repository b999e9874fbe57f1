#!/usr/bin/env bash
# make netlab-relay: a camera behind a home NAT reached by a viewer behind a
# carrier NAT through a MASQUE relay on the "internet", in network
# namespaces with real kernel NAT (nftables). The viewer pairs and records
# 10 s to out/netlab-relay.mp4 through the relay (pairing with the offer
# `camagent pair` prints, and once more with only the camera's LAN address,
# through the relay's locator); the relay is killed and
# restarted mid-stream and the viewer must resume within 5 s without
# re-pairing. ffprobe checks the file; a one-line JSON summary is printed last.
#
#   wan (relay 203.0.113.1:4443, also 198.51.100.1)
#    |- natc 203.0.113.2 | 192.168.1.1 -- cam   192.168.1.2  (home NAT)
#    '- natp 198.51.100.2 | 10.0.0.1   -- phone 10.0.0.2     (carrier NAT)
set -euo pipefail
cd "$(dirname "$0")/../.."

lab=netlab-relay prefix=nr
# shellcheck source=test/netlab/lab.sh
. test/netlab/lab.sh

# The camera cannot be reached from the internet: check the NAT really works.
if nsx $phone timeout 1 bash -c 'echo x >/dev/udp/192.168.1.2/4433' 2>/dev/null && \
	nsx $wan ping -c1 -W1 192.168.1.2 >/dev/null 2>&1; then
	echo "netlab-relay: camera reachable without NAT: lab broken" >&2; exit 1
fi

token=netlab-$RANDOM$RANDOM
relay_state=$work/relay-state
start_relay() {
	# ip netns exec execs the command, so $! is the relay itself.
	ip netns exec $wan "$bin" relay --listen 203.0.113.1:4443 --state-dir "$relay_state" --token "$token" \
		--allow-target 203.0.113.0/24 --allow-target 198.51.100.0/24 \
		--metrics 127.0.0.1:9464 >"$work/relay.url" 2>>"$work/relay.log" &
	relay_pid=$!
	pids+=("$relay_pid")
	for _ in $(seq 100); do grep -q 'relay url:' "$work/relay.url" && return 0; sleep 0.05; done
	echo "netlab-relay: relay did not start" >&2; cat "$work/relay.log" >&2; exit 1
}
relay_metric() { # relay_metric NAME-WITH-LABELS: value from the live relay
	nsx $wan timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3' |
		awk -v m="$1" '$1==m {print $2}'
}
start_relay
relay_url=$(sed -n 's/^relay url: //p' "$work/relay.url")
echo "relay: $relay_url" >&2

cam_flags=(--config /dev/null --name porch --state-dir "$work/cam-state" --listen 192.168.1.2:4433
	--capture.device test --capture.width 640 --capture.height 360 --capture.fps 30
	--encode.codec h264 --encode.keyframe-interval 30 --relay.urls "$relay_url" --relay.token "$token")
: >"$work/agent.log"
ip netns exec $cam "$bin" agent "${cam_flags[@]}" 2>"$work/agent.log" &
pids+=("$!")
# The agent keeps its current public address at each relay in public.json
# (what `camagent pair` puts in offers); nothing here reads its log.
public_addr() { sed -n 's/.*"relays":{"[^"]*":"\([^"]*\)".*/\1/p' "$work/cam-state/public.json" 2>/dev/null || true; }
public=""
for _ in $(seq 200); do
	public=$(public_addr)
	[ -n "$public" ] && grep -q 'msg=streaming' "$work/agent.log" && break
	sleep 0.1
done
[ -n "$public" ] || { echo "netlab-relay: camera did not register" >&2; cat "$work/agent.log" >&2; exit 1; }
echo "camera registered at $public (behind 203.0.113.2's NAT)" >&2

now_ms() { date +%s%3N; }
# Pair as a user would: the default offer lists the camera's LAN address,
# its public address at the relay (raddr) and the relay URL with the
# camera's locator secret.
uri=$(nsx $cam "$bin" pair "${cam_flags[@]}" --uri-only)
grep -qF "raddr=$public" <<<"$uri" || { echo "netlab-relay: offer lacks the public address $public: $uri" >&2; exit 1; }
t0=$(now_ms)
nsx $phone "$bin" join "$uri" --state-dir "$work/phone-state" --as phone >&2
pair_ms=$(($(now_ms) - t0))
# A second viewer pairs from an offer whose only address is the LAN one,
# unreachable from the carrier NAT (as with a stale public address): join
# must locate the camera through the relay.
uri2=$(nsx $cam "$bin" pair "${cam_flags[@]}" --addr 192.168.1.2:4433 --uri-only)
grep -q 'raddr=' <<<"$uri2" && { echo "netlab-relay: --addr offer still lists relay addresses: $uri2" >&2; exit 1; }
t0=$(now_ms)
nsx $phone "$bin" join "$uri2" --state-dir "$work/tablet-state" --as tablet >&2
pair_locate_ms=$(($(now_ms) - t0))
echo "paired in $pair_ms ms (offer with the public address), $pair_locate_ms ms (through the relay's locator)" >&2

ip netns exec $phone "$bin" view porch --state-dir "$work/phone-state" --resume -q \
	-o "$out" --duration 10s --summary "$work/summary.json" 2>"$work/view.log" &
view_pid=$!
pids+=("$view_pid")

# Mid-stream: kill the relay outright, restart it (same key, new ports).
sleep 4
bytes_before=$(relay_metric 'camagent_relay_bytes_total{direction="from_camera"}')
kill -9 "$relay_pid"; wait "$relay_pid" 2>/dev/null || true
echo "relay killed after $bytes_before bytes from the camera; restarting" >&2
sleep 0.5
start_relay
wait "$view_pid" || { echo "netlab-relay: viewer failed" >&2; cat "$work/view.log" >&2; exit 1; }
bytes_after=$(relay_metric 'camagent_relay_bytes_total{direction="from_camera"}')
new_public=$(public_addr)

probe=$(ffprobe -v error -count_frames -select_streams v:0 \
	-show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 "$out")
IFS=, read -r codec width height frames <<<"$probe"
summary=$(cat "$work/summary.json")
reconnects=$(sed -n 's/.*"reconnects":\([0-9]*\).*/\1/p' <<<"$summary")
gap=$(sed -n 's/.*"max_gap_s":\([0-9.e+-]*\).*/\1/p' <<<"$summary")
echo "ffprobe: $probe; viewer: $summary" >&2
fail=""
[ "$codec" = h264 ] && [ "$width" = 640 ] && [ "$height" = 360 ] || fail="wrong stream $probe"
[ "${frames:-0}" -ge 250 ] || fail="only ${frames:-0} frames"
[ "${reconnects:-0}" -ge 1 ] || fail="viewer never reconnected: was the relay really in the path?"
awk -v g="${gap:-99}" 'BEGIN { exit !(g < 5) }' || fail="viewer resumed after ${gap}s, limit 5s"
[ -n "$new_public" ] && [ "$new_public" != "$public" ] || fail="camera did not re-register (still $public)"
[ "${bytes_after:-0}" -gt 0 ] || fail="restarted relay forwarded nothing"
if [ -n "$fail" ]; then
	echo "netlab-relay: FAIL: $fail" >&2
	tail -20 "$work/agent.log" "$work/view.log" >&2
	exit 1
fi
printf '{"result":"pass","output":"%s","codec":"%s","width":%s,"height":%s,"frames":%s,"bytes_via_relay":%s,"reconnects":%s,"max_gap_s":%s,"public_before":"%s","public_after":"%s","pair_ms":%s,"pair_via_locator_ms":%s}\n' \
	"$out" "$codec" "$width" "$height" "$frames" "$((bytes_before + bytes_after))" "$reconnects" "$gap" "$public" "$new_public" "$pair_ms" "$pair_locate_ms"

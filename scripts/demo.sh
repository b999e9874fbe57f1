#!/usr/bin/env bash
# make demo: start an agent on the built-in test source, pair a viewer with
# it on loopback, record 10 s of live view to out/demo.mp4, check it with
# ffprobe, and print the path last.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=bin/camagent
port=${DEMO_PORT:-44433}
work=out/demo
rm -rf "$work" out/demo.mp4
mkdir -p "$work"
cam_state=$work/camera-state
viewer_state=$work/viewer-state
agent_log=$work/agent.log

agent_flags=(--config /dev/null --name demo-camera --state-dir "$cam_state"
	--listen "127.0.0.1:$port" --capture.device test
	--capture.width "${DEMO_WIDTH:-1280}" --capture.height "${DEMO_HEIGHT:-720}" --capture.fps 30
	--encode.codec h264 --encode.keyframe-interval 30)

"$bin" agent "${agent_flags[@]}" 2>"$agent_log" &
agent_pid=$!
trap 'kill $agent_pid 2>/dev/null || true; wait $agent_pid 2>/dev/null || true' EXIT

# Wait until the agent streams (it logs "streaming" after the first encoded
# frame), so the pairing command finds its key already made.
for _ in $(seq 100); do
	grep -q 'msg=streaming' "$agent_log" && break
	kill -0 "$agent_pid" 2>/dev/null || { cat "$agent_log" >&2; exit 1; }
	sleep 0.1
done
grep -q 'msg=streaming' "$agent_log" || { echo "demo: agent did not start streaming" >&2; cat "$agent_log" >&2; exit 1; }

# The camera prints a one-time pairing offer; the viewer joins with it.
uri=$("$bin" pair "${agent_flags[@]}" --uri-only)
echo "pairing offer: $uri" >&2
"$bin" join "$uri" --state-dir "$viewer_state" --as demo-viewer >&2

"$bin" view demo-camera --state-dir "$viewer_state" -o out/demo.mp4 --duration 10s \
	--summary "$work/summary.json" >&2

kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
trap - EXIT

probe=$(ffprobe -v error -count_frames -select_streams v:0 \
	-show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 out/demo.mp4)
echo "ffprobe: $probe (codec,width,height,frames)" >&2
IFS=, read -r codec width height frames <<<"$probe"
if [ "$codec" != h264 ] || [ "$width" != "${DEMO_WIDTH:-1280}" ] || [ "$height" != "${DEMO_HEIGHT:-720}" ] || [ "$frames" -lt 250 ]; then
	echo "demo: out/demo.mp4 is not what was asked for" >&2
	exit 1
fi
echo "$(pwd)/out/demo.mp4"

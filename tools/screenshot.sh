#!/usr/bin/env bash
# Screenshot of a recording in the rerun web viewer (headless Chromium), e.g. for docs/:
#
#   tools/screenshot.sh REC.rrd OUT.png [wait_seconds=60] [width=1600] [height=1000]
#
# Needs .venv/bin/rerun (tools/setup.sh), Debian's chromium, and the npm package playwright-core
# (installed into $PLAYWRIGHT_DIR, default .deps/playwright, on first use). The viewer renders in software (SwiftShader),
# so give it time: a tiny segment needs about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
rec=$1 out=$2 wait=${3:-60} width=${4:-1600} height=${5:-1000}
pw=${PLAYWRIGHT_DIR:-.deps/playwright}
if [ ! -d "$pw/node_modules/playwright-core" ]; then
    mkdir -p "$pw"
    (cd "$pw" && npm init -y >/dev/null && npm install --silent playwright-core@1)
fi
web_port=${WEB_PORT:-9190} grpc_port=${GRPC_PORT:-9977}
if curl -sf "http://127.0.0.1:$web_port" >/dev/null; then
    echo "port $web_port is taken (another viewer?): set WEB_PORT and GRPC_PORT" >&2
    exit 1
fi
# The viewer binary itself (.venv/bin/rerun is a Python wrapper whose child would outlive a kill).
viewer=$(ls .venv/lib/python3*/site-packages/rerun_sdk/rerun_cli/rerun | head -1)
"$viewer" "$rec" --serve-web --web-viewer-port $web_port --port $grpc_port >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$web_port" >/dev/null && break; sleep 0.2; done
VIEWER_URL="http://127.0.0.1:$web_port/?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A$grpc_port%2Fproxy&renderer=webgl" \
    NODE_PATH=$pw/node_modules node tools/screenshot.mjs "$out" "$wait" "$width" "$height" 2>/dev/null
echo "wrote $out"

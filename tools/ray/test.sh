#!/usr/bin/env bash
# The scale-out test, on this machine: a local Ray head on loopback with 2 worker CPUs, a
# generated world evaluated in 4 shards (shard 2's first attempt killed, then retried) and
# merged, which must equal one process's run exactly (metrics.json but for wall times,
# predictions.parquet, submission.binproto). Needs tools/ray/setup.sh (run here) and the
# scenetok binary (built here); the main tests never run it.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/ray/setup.sh
cargo build --locked --quiet
bin="$PWD/target/debug/scenetok"
# A loopback-only cluster: no token authentication. (Ray 2.60 turns it on for `ray start`
# when ~/.ray/auth_token exists, which a local `ray.init()` leaves behind, and the driver
# would then be refused.)
export RAY_AUTH_MODE=disabled RAY_DISABLE_USAGE_STATS=1
py="$PWD/.venv-ray/bin/python"
work=$(mktemp -d)
port=${RAY_TEST_PORT:-6391}
stop() { "$PWD/.venv-ray/bin/ray" stop --force >/dev/null 2>&1 || true; rm -rf "$work"; }
trap stop EXIT

"$bin" generate --preset tiny --segments 6 --frames 120 --seed 11 --out "$work/world" >/dev/null
"$bin" eval --data "$work/world" --model ctra --out "$work/single" >/dev/null

"$PWD/.venv-ray/bin/ray" start --head --node-ip-address 127.0.0.1 --port "$port" \
    --num-cpus 2 --include-dashboard false --disable-usage-stats >/dev/null
"$py" tools/ray/scenetok_ray.py eval --address "127.0.0.1:$port" --scenetok "$bin" --data "$work/world" \
    --shards 4 --out "$work/merged" --inject-kill 2 --summary "$work/summary.json" -- --model ctra >/dev/null

"$py" - "$work" <<'PY'
import json, sys
from pathlib import Path
w = Path(sys.argv[1])
def metrics(run):
    m = json.loads((w / run / "metrics.json").read_text())
    m.pop("latency")
    return m
assert metrics("single") == metrics("merged"), "merged metrics differ from the single run's"
for f in ["predictions.parquet", "submission.binproto"]:
    assert (w / "single" / f).read_bytes() == (w / "merged" / f).read_bytes(), f
s = json.loads((w / "summary.json").read_text())
assert s["killed_and_retried"] == [2], s
assert s["shards"] == 4 and len(s["per_shard"]) == 4, s
print(f"ray test: ok — 4 shards on {s['cpus']:.0f} CPUs (shard 2 killed once and retried) merged into "
      f"{metrics('merged')['scenarios']} scenarios equal to the single run")
PY

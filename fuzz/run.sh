#!/usr/bin/env bash
# Runs one fuzz target under libFuzzer for SECONDS (default 600) with the settings every
# finding is judged by: 2 GB of memory, 10 s per input.
#
#   fuzz/run.sh TARGET [SECONDS] [more libFuzzer flags]
#
# New inputs go to fuzz/corpus/TARGET (git-ignored); the committed seeds and regression cases
# are read too. A finding is written to fuzz/artifacts/TARGET/ (git-ignored). cargo-fuzz needs
# nightly compiler flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags]}
seconds=${2:-600}
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "corpus/$target"
dirs=("corpus/$target")
for d in "seeds/$target" "regressions/$target"; do
    if [ -d "$d" ]; then dirs+=("$d"); fi
done
export RUSTC_BOOTSTRAP=1
exec nice -n 5 cargo fuzz run "$target" "${dirs[@]}" -- \
    -rss_limit_mb=2048 -timeout=10 -max_total_time="$seconds" -print_final_stats=1 "$@"

#!/usr/bin/env bash
# The scene-token experiment (#19): one token dataset, the same transformer trained with the same
# seed and steps without tokens, with every token feature, and with only the LiDAR encoder's or
# only the image model's pooled features; each compared with the no-token model on the held-out
# test worlds, overall, on the obstacle subset and on the rest (95% bootstrap intervals).
#
#   tools/train/token_experiment.sh [DATA] [CKPT] [OUT]    # defaults: ~/data/motion-tokens ~/ckpt docs/token-experiment
#
# Everything resumes: the dataset skips shards already built, training resumes from its last
# checkpoint (`--resume`), a comparison already written is kept. The two runs of a pair train at
# the same time with one thread each. Costs on this project's 2-core machine: README, "Scene tokens".
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-$HOME/data/motion-tokens}
ckpt=${2:-$HOME/ckpt}
out=${3:-docs/token-experiment}
steps=${STEPS:-1200}
bin=target/debug/scenetok
py=.venv-train/bin/python
mkdir -p "$ckpt" "$out"

"$bin" dataset motion --out "$data" --train-worlds 100 --validation-worlds 16 --test-worlds 72 \
    --obstacles 20 --tokens

train() { # feature set (none, all, lidar, image)
    local tok=()
    [ "$1" != none ] && tok=(--tokens "$1")
    [ -f "$ckpt/tok_$1.safetensors" ] && return 0
    "$py" tools/train/train_motion.py --data "$data" --steps "$steps" --batch 64 --seed 0 "${tok[@]}" \
        --threads 1 --ckpt "$ckpt/tok_$1" --eval-every 400 --ckpt-every 200 --resume \
        --out "$ckpt/tok_$1.safetensors" > "$ckpt/tok_$1.log" 2>&1
}
train none & train all & wait
train lidar & train image & wait

for b in all lidar image; do
    [ -f "$out/compare_$b.json" ] && continue
    "$bin" compare --dataset "$data" --split test --a transformer --a-weights "$ckpt/tok_none.safetensors" \
        --b transformer --b-weights "$ckpt/tok_$b.safetensors" --obstacle-distance 5 --resamples 1000 \
        --json "$out/compare_$b.json.tmp" > "$out/compare_$b.txt"
    mv "$out/compare_$b.json.tmp" "$out/compare_$b.json"
done

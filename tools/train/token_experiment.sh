#!/usr/bin/env bash
# The scene-token experiment (#19): one token dataset, the same transformer trained with the same
# seed and steps without tokens, with every token feature, and with only the LiDAR encoder's or
# only the image model's pooled features; each compared with the no-token model on the held-out
# test worlds, overall, on the obstacle subset and on the rest (95% bootstrap intervals).
#
#   tools/train/token_experiment.sh [DATA] [CKPT] [OUT]    # defaults: ~/data/motion-tokens ~/ckpt docs/token-experiment
#
# The fine-tune variant starts every arm from trained weights without tokens (the shipped ones),
# so the no-token arm is as strong as what ships and the token arms add only the token slot:
#
#   INIT=data/weights/motion_transformer.safetensors NAME=ft ARMS="none all" LR=3e-4 WARMUP=100 TOKEN_NORM=standard \
#       tools/train/token_experiment.sh ~/data/motion-tokens ~/ckpt docs/token-experiment-ft
#
# (STEPS, ARMS, LR, WARMUP, TOKEN_NORM: the runs' settings, by default the first experiment's; NAME
# prefixes their checkpoints. An arm `all:object` has every feature block of the object tokens
# only, see train_motion.py --token-kinds.)
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
name=${NAME:-tok}
arms=(${ARMS:-none all lidar image})
opts=(--lr "${LR:-1e-3}" --warmup "${WARMUP:-300}" --token-norm "${TOKEN_NORM:-none}")
[ -n "${INIT:-}" ] && opts+=(--init "$INIT")
bin=target/debug/scenetok
py=.venv-train/bin/python
mkdir -p "$ckpt" "$out"

"$bin" dataset motion --out "$data" --train-worlds 100 --validation-worlds 16 --test-worlds 72 \
    --obstacles 20 --tokens

train() { # arm: none, or a feature set (all, lidar, image) with :KINDS for some element kinds (all:object)
    local tok=() feats=${1%%:*} kinds=${1#*:} tag=${1/:/-}
    [ "$feats" != none ] && tok=(--tokens "$feats")
    [ "$kinds" != "$1" ] && tok+=(--token-kinds "$kinds")
    [ -f "$ckpt/${name}_$tag.safetensors" ] && return 0
    "$py" tools/train/train_motion.py --data "$data" --steps "$steps" --batch 64 --seed 0 "${tok[@]}" "${opts[@]}" \
        --threads 1 --ckpt "$ckpt/${name}_$tag" --eval-every 400 --ckpt-every 200 --resume \
        --out "$ckpt/${name}_$tag.safetensors" > "$ckpt/${name}_$tag.log" 2>&1
}
# Two runs at a time, one thread each.
for ((i = 0; i < ${#arms[@]}; i += 2)); do
    train "${arms[i]}" &
    [ -n "${arms[i + 1]:-}" ] && train "${arms[i + 1]}" &
    wait
done

for arm in "${arms[@]}"; do
    [ "$arm" = none ] && continue
    b=${arm/:/-}
    [ -f "$out/compare_$b.json" ] && continue
    "$bin" compare --dataset "$data" --split test --a transformer --a-weights "$ckpt/${name}_none.safetensors" \
        --b transformer --b-weights "$ckpt/${name}_$b.safetensors" --obstacle-distance 5 --resamples 1000 \
        --json "$out/compare_$b.json.tmp" > "$out/compare_$b.txt"
    mv "$out/compare_$b.json.tmp" "$out/compare_$b.json"
done

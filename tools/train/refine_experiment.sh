#!/usr/bin/env bash
# SparseRefine end to end, as measured for the README (#20): generated worlds, the dense
# camera-segmentation model, one refiner per low-resolution scale, the evaluation on held-out
# worlds and the speed bench. Each step is skipped when its output exists (delete it to redo);
# training checkpoints live in ~/ckpt (resume: the same training command with --resume).
#
#   tools/train/refine_experiment.sh            # everything
#   STEPS_DENSE=1500 STEPS_REFINE=600 tools/train/refine_experiment.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-$HOME/data/camseg}
CKPT=${CKPT:-$HOME/ckpt}
OUT=${OUT:-docs/refine}
PY=.venv-train/bin/python
BIN=target/debug/scenetok
STEPS_DENSE=${STEPS_DENSE:-1500}
STEPS_REFINE=${STEPS_REFINE:-1000}
mkdir -p "$DATA" "$CKPT" "$OUT"
[ -x "$PY" ] || tools/setup-train.sh
[ -x "$BIN" ] || cargo build --locked

# Worlds: one frame per segment (100 train worlds, 10 validation, 20 test), full-size cameras.
for spec in train:1000:100 val:2000:10 test:3000:20; do
    IFS=: read -r split seed segs <<< "$spec"
    [ -d "$DATA/$split" ] || $BIN generate --out "$DATA/$split" --segments "$segs" --frames 1 --seed "$seed"
done

# The dense model (EfficientNet-Lite0 + FPN), exported to ONNX.
[ -f data/models/camera_seg_lite0.onnx ] || $PY tools/train/train_camera_seg.py --data "$DATA/train" \
    --data-cmd "scenetok generate --out train --segments 100 --frames 1 --seed 1000" --val "$DATA/val" \
    --steps "$STEPS_DENSE" --seed 0 --ckpt "$CKPT/camera_seg" --ckpt-every 100 --out data/models/camera_seg_lite0.onnx

# One refiner per scale; τ chosen on the validation worlds (80% of the low-res errors).
for scale in 0.5 0.25; do
    w=data/weights/camera_refiner_x$scale.safetensors
    [ -f "$w" ] || $PY tools/train/train_refiner.py --data "$DATA/train" --val "$DATA/val" --scale "$scale" \
        --steps "$STEPS_REFINE" --batch 4 --crop 384 --lr 2e-3 --threads 2 --class-weight 0.5 --seed 0 \
        --ckpt "$CKPT/refiner_x$scale" --out "$w"
done

# Held-out test worlds: every method, per-class IoU, boundary F, ms per image.
$BIN eval --task camera-seg --data "$DATA/test" --out "$OUT/test" | tee "$OUT/eval_test.txt"
# The real pvps frame (domain gap), τ re-chosen on the validation worlds.
[ -d ../shared/waymo-samples ] && $BIN eval --task camera-seg --data ../shared/waymo-samples/v1/pvps_data_one_frame.tfrecord \
    --tau-data "$DATA/val" --tau-frames 1 | tee "$OUT/eval_pvps.txt"
# Speed in one run, interleaved.
$BIN bench refine --data "$DATA/test" --frames 4 --reps 2 | tee "$OUT/bench_refine.txt"
# The picture.
$BIN viz --data "$DATA/test" --refine --refine-scale 0.25 --png docs/sparserefine.png | tee "$OUT/viz.txt"

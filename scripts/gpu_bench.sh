#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one command, within ~10 minutes on one H100/H200:
# MinkUNet34 forward and training step on the SemanticKITTI scan and a ScanNet room, float32 and
# bf16; one submanifold layer per stride in the 'pairs' and 'dense' dataflows; compile times
# (first_call_ms) and peak device memory. Reports: $OUT/gpu_f32.json, $OUT/gpu_bf16.json, .md.
#
#   bash scripts/gpu_bench.sh [DATA_DIR]      # DATA_DIR holds the two files below (default ../shared/data)
#
# The machine needs jax with a CUDA plugin, flax and optax (no ws3d_jax install: it runs from the
# checkout). When ../shared/data does not travel with the checkout, copy the two files into an
# ignored folder of the repo first and pass that folder:
#   mkdir -p .gpu_data/semantickitti/sequences/00/velodyne .gpu_data/scannet/scannet_instance_data
#   cp ../shared/data/semantickitti/sequences/00/velodyne/000000.bin .gpu_data/semantickitti/sequences/00/velodyne/
#   cp ../shared/data/scannet/scannet_instance_data/scene0000_00_vert.npy .gpu_data/scannet/scannet_instance_data/
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${OUT:-gpu_report}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
$PY -c 'import jax; print(jax.__version__, jax.devices())'
# float32: layers at 32-256 channels (both dataflows), up/down, by-level dataflows, MinkUNet34 forward + step.
timeout 330 $PY -m ws3d_jax.bench.sparse_conv --data-root "$DATA" --device-info --network minkunet34 \
  --no-profile --out "$OUT/gpu_f32.json" 2>&1 | tee "$OUT/gpu_f32.log" | grep -E '^\[bench\]|error|Error' || true
# bf16: the network only (forward + step on both scans).
timeout 150 $PY -m ws3d_jax.bench.sparse_conv --data-root "$DATA" --device-info --network minkunet34 \
  --network-dtype bfloat16 --only network --no-crop-check --out "$OUT/gpu_bf16.json" 2>&1 \
  | tee "$OUT/gpu_bf16.log" | grep -E '^\[bench\]|error|Error' || true
for f in "$OUT"/gpu_f32.json "$OUT"/gpu_bf16.json; do
  [ -f "$f" ] && $PY -m ws3d_jax.bench.sparse_conv --render "$f" > "${f%.json}.md" || echo "missing $f"
done

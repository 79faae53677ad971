#!/bin/bash
# The label-efficiency runs of issues 22 and 23 (all recorded as of 2026-12-06), each resuming
# from the records committed in docs/results/le/ (a finished run is never trained again). Run it
# alone on the machine (the benchmark records the load and marks shared runs), from the
# repository root:   nohup bash scripts/le_queue.sh > runs/le_queue.log 2>&1 &
cd "$(dirname "$0")/.." && source .venv/bin/activate && mkdir -p runs
LE="python -m ws3d_jax.bench.label_efficiency"
$LE --room_seed=5000 --ratios=5,10 --out=runs/le_room5000 --results=docs/results/le/room5000 --commit > runs/le_room5000.log 2>&1
$LE --table5 --out=runs/le_room0 --results=docs/results/le/room0 --commit > runs/le_table5.log 2>&1
$LE --instances --out=runs/le_ins_room0 --results=docs/results/le/instances_room0 --commit > runs/le_instances.log 2>&1
$LE --ratios=20,100 --every_arm_at_100 --arms=sup_only,ws3d,ws3d_transductive --out=runs/le_room0 \
    --results=docs/results/le/room0 --commit > runs/le_tables23.log 2>&1
python scripts/le_results_tables.py

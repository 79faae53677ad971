"""Times the per-scene preprocessing stages on one CPU core and scores the regions.

    python -m ws3d_jax.bench.preprocess --out report.json [--data ../shared/data] [--repeats 3]

Runs one SemanticKITTI scan (00/000000) and one full-resolution ScanNet scene (scene0000_00)
from the real data samples, with each data set's default parameters and appearance features
(remission, RGB). For each it reports the
seconds of every stage (median of the repeats, after one warm-up run), the region count Q, the
mean region size, and the point-weighted region purity next to that of a voxel grid with the
same number of occupied voxels.
"""
from __future__ import annotations

import os

if __name__ == '__main__':
  # One core, set before numpy / open3d / scipy start their thread pools.
  for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ws3d_jax.bench.scenes import DEFAULT_DATA, kitti_path, read_kitti, read_scannet, scannet_path
from ws3d_jax.data.labels import IGNORE_LABEL
from ws3d_jax.geometry.adjacency import region_adjacency
from ws3d_jax.geometry.boundary import label_boundaries
from ws3d_jax.geometry.knn import knn
from ws3d_jax.geometry.normals import estimate_normals
from ws3d_jax.geometry.oversegment import oversegment
from ws3d_jax.geometry.preprocess import (PreprocessParams, default_params, oversegment_kwargs,
                                          preprocess_scene)
from ws3d_jax.geometry.region_quality import region_purity, voxel_partition_like

def time_stages(xyz: np.ndarray, labels: np.ndarray, params: PreprocessParams,
                features: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
  """Seconds of each stage of preprocess_scene, run in the same order, and the region ids."""
  seconds: dict[str, float] = {}

  def timed(stage: str, fn: Callable, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    seconds[stage] = time.perf_counter() - start
    return result

  neighbours = timed('knn', knn, xyz, max(params.grow_k, params.adjacency_k, params.boundary_k))
  normals, curvature = timed('normals', estimate_normals, xyz, params.normal_k)
  scaled = None if features is None else features / np.float32(params.feature_scale)
  region_id = timed('oversegment', oversegment, xyz, normals, curvature,
                    neighbours=neighbours, features=scaled, **oversegment_kwargs(params))
  timed('adjacency', region_adjacency, xyz, region_id, params.adjacency_k,
        params.adjacency_radius, neighbours=neighbours)
  timed('boundary', label_boundaries, xyz, labels, IGNORE_LABEL, params.boundary_k,
        params.boundary_radius, neighbours=neighbours)
  timed('preprocess_scene', preprocess_scene, xyz, labels, IGNORE_LABEL, params, features)
  return seconds, region_id


def bench_scene(name: str, xyz: np.ndarray, labels: np.ndarray, dataset: str,
                repeats: int, features: np.ndarray | None = None) -> dict:
  params = default_params(dataset)
  time_stages(xyz, labels, params, features)  # warm-up: page in libraries and data
  runs = [time_stages(xyz, labels, params, features) for _ in range(repeats)]
  region_id = runs[-1][1]
  stages = {stage: statistics.median(run[stage] for run, _ in runs) for stage in runs[0][0]}
  q = int(region_id.max()) + 1
  voxel_id, voxel_size = voxel_partition_like(xyz, q)
  out = preprocess_scene(xyz, labels, IGNORE_LABEL, params, features)
  return {
      'scene': name,
      'dataset': dataset,
      'points': int(len(xyz)),
      'feature_channels': 0 if features is None else int(np.prod(np.shape(features)[1:])),
      'seconds': {stage: round(s, 4) for stage, s in stages.items()},
      'seconds_sum_of_stages': round(sum(s for k, s in stages.items()
                                         if k != 'preprocess_scene'), 4),
      'regions': q,
      'mean_region_size': round(len(xyz) / q, 2),
      'purity': round(region_purity(region_id, labels, IGNORE_LABEL), 4),
      'voxel_regions': int(voxel_id.max()) + 1,
      'voxel_size_m': round(voxel_size, 4),
      'voxel_purity': round(region_purity(voxel_id, labels, IGNORE_LABEL), 4),
      'region_pairs': int(len(out['region_pairs'])),
      'boundary_fraction': round(float(out['boundary'].mean()), 4),
      # JSON has no infinity: 'inf' marks a switched-off threshold.
      'params': {name: 'inf' if value == float('inf') else value
                 for name, value in dataclasses.asdict(params).items()},
  }


def pin_to_one_core() -> str:
  """Restricts this process to its first allowed CPU (like taskset -c); returns a note."""
  if hasattr(os, 'sched_setaffinity'):
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f'pinned to CPU {core}'
  return 'not pinned (no sched_setaffinity here); OMP_NUM_THREADS=1'


def markdown_table(results: list[dict]) -> str:
  rows = ['| scene | points | knn | normals | overseg | adjacency | boundary | '
          'preprocess_scene (s) | Q | mean size | purity | voxel purity |',
          '|---|---|---|---|---|---|---|---|---|---|---|---|']
  for r in results:
    s = r['seconds']
    rows.append(f"| {r['scene']} | {r['points']} | {s['knn']:.3f} | {s['normals']:.3f} | "
                f"{s['oversegment']:.3f} | {s['adjacency']:.3f} | {s['boundary']:.3f} | "
                f"{s['preprocess_scene']:.3f} | {r['regions']} | {r['mean_region_size']:.1f} | "
                f"{r['purity']:.4f} | {r['voxel_purity']:.4f} |")
  return '\n'.join(rows)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', required=True, help='JSON report to write')
  parser.add_argument('--data', default=str(DEFAULT_DATA), help='the shared/data folder')
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args(argv)
  if not Path(args.data).is_dir():
    raise SystemExit(f'data samples not found at {args.data} (pass --data)')
  scenes = [('semantickitti 00/000000', 'semantickitti', read_kitti(args.data), kitti_path(args.data)),
            ('scannet scene0000_00', 'scannet', read_scannet(args.data), scannet_path(args.data))]
  for name, _, sample, path in scenes:
    if sample is None:
      raise SystemExit(f'{name} not found at {path} (pass --data)')
  pinning = pin_to_one_core()
  # Appearance features: remission for SemanticKITTI, RGB 0..255 for ScanNet.
  results = [bench_scene(name, s.xyz, s.semantic, dataset, args.repeats, s.appearance)
             for name, dataset, s, _ in scenes]
  report = {
      'machine': {'cpu': platform.processor() or platform.machine(), 'python':
                  platform.python_version(), 'threads': pinning},
      'repeats': args.repeats,
      'results': results,
  }
  Path(args.out).write_text(json.dumps(report, indent=2))
  print(markdown_table(results))
  print(f'({pinning}; median of {args.repeats} runs; report in {args.out})')


if __name__ == '__main__':
  main()

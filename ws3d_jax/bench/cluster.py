"""Times PointGroup's host-side proposal clustering (geometry/cluster.py) on one CPU core.

    python -m ws3d_jax.bench.cluster [--data ../shared/data] [--out report.json]

The scene is a real ScanNet room when the data samples are there (scene0000_00, subsampled
or tiled to --points, 80,000 by default), otherwise a synthetic room. Its ground truth stands
in for the network: the semantic labels are the "prediction", and the offsets are each
point's instance centre minus the point plus Gaussian noise of --noise metres per axis
(0 = a perfect offset head, every object collapsed onto its centre: the densest, hardest
case for the clustering). `propose` runs with PointGroup's settings (radius 0.03 m on both
coordinate sets, 50 points at least, wall and floor ignored); each figure is the median and
the minimum of --repeats runs after one warm-up run.

One core: run as a module (`python -m`), it sets OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS to 1 before numpy is imported and pins itself to one CPU with
sched_setaffinity, like `taskset -c 0 python -m ws3d_jax.bench.cluster`. (scipy's KD-tree
pair search is single-threaded anyway; the pinning keeps numpy's BLAS-free ufuncs and the
rest of the process on one core too.)
"""
from __future__ import annotations

import os

if __name__ == '__main__':
  # Before numpy and scipy create their thread pools.
  for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ws3d_jax.bench.preprocess import pin_to_one_core
from ws3d_jax.bench.scenes import DEFAULT_DATA, read_scannet
from ws3d_jax.data.labels import IGNORE_LABEL, SCANNET_CLASSES
from ws3d_jax.geometry.cluster import cluster_points, proposal_gt_iou, propose

WALL_FLOOR = (SCANNET_CLASSES.index('wall'), SCANNET_CLASSES.index('floor'))
RADIUS = 0.03      # PointGroup's cluster_radius, on both coordinate sets
MIN_POINTS = 50    # PointGroup's cluster_npoint_thre
TARGET_S = 1.0


# --------------------------------------------------------------------------------------------
# Scenes.

def synthetic_room(num_points: int, seed: int = 0) -> tuple[np.ndarray, ...]:
  """A 6 m x 5 m x 2.5 m room: floor, four walls and 16 boxes of furniture classes standing
  on the floor. Like a ScanNet room, a third of the points lie on the floor and the walls and
  the objects are sampled densely enough (~2 cm apart) to hold together at 3 cm; within the
  two groups the faces get points in proportion to their area."""
  rng = np.random.default_rng(seed)
  faces = []   # (corner, edge u, edge v, class, instance)
  size = np.array([6.0, 5.0, 2.5])
  faces.append(((0, 0, 0), (size[0], 0, 0), (0, size[1], 0), WALL_FLOOR[1], 0))
  faces.append(((0, 0, 0), (size[0], 0, 0), (0, 0, size[2]), WALL_FLOOR[0], 0))
  faces.append(((0, size[1], 0), (size[0], 0, 0), (0, 0, size[2]), WALL_FLOOR[0], 0))
  faces.append(((0, 0, 0), (0, size[1], 0), (0, 0, size[2]), WALL_FLOOR[0], 0))
  faces.append(((size[0], 0, 0), (0, size[1], 0), (0, 0, size[2]), WALL_FLOOR[0], 0))
  furniture = [SCANNET_CLASSES.index(c) for c in ('chair', 'table', 'cabinet', 'sofa', 'desk',
                                                  'bookshelf', 'bed', 'otherfurniture')]
  for k in range(16):
    extent = rng.uniform([0.3, 0.3, 0.3], [0.9, 0.9, 0.8])
    lo = np.r_[rng.uniform(0.1, size[:2] - extent[:2] - 0.1), 0.0]
    ex, ey, ez = np.diag(extent)
    cls = furniture[k % len(furniture)]
    for corner, u, v in ((lo + ez, ex, ey), (lo, ex, ez), (lo + ey, ex, ez), (lo, ey, ez),
                         (lo + ex, ey, ez)):
      faces.append((corner, u, v, cls, k + 1))
  area = np.array([np.linalg.norm(np.cross(u, v)) for _, u, v, _, _ in faces])
  room = np.array([inst == 0 for *_, inst in faces])
  counts = np.zeros(len(faces), np.int64)
  num_room = num_points // 3
  counts[room] = rng.multinomial(num_room, area[room] / area[room].sum())
  counts[~room] = rng.multinomial(num_points - num_room, area[~room] / area[~room].sum())
  xyz, semantic, instance = [], [], []
  for (corner, u, v, cls, inst), n in zip(faces, counts):
    st = rng.uniform(size=(n, 2))
    xyz.append(np.asarray(corner) + st[:, :1] * np.asarray(u) + st[:, 1:] * np.asarray(v))
    semantic.append(np.full(n, cls))
    instance.append(np.full(n, inst))
  return (np.concatenate(xyz).astype(np.float32), np.concatenate(semantic).astype(np.int32),
          np.concatenate(instance).astype(np.int32))


def resize(xyz: np.ndarray, semantic: np.ndarray, instance: np.ndarray, num_points: int,
           rng: np.random.Generator) -> tuple[np.ndarray, ...]:
  """Exactly num_points points: a random subset, after tiling copies of the scene side by
  side along x (1 m apart, instances renumbered) when it has fewer."""
  copies = -(-num_points // len(xyz))
  if copies > 1:
    step = float(np.ptp(xyz[:, 0])) + 1.0
    num_inst = int(instance.max()) + 1
    xyz = np.concatenate([xyz + np.float32([k * step, 0, 0]) for k in range(copies)])
    semantic = np.tile(semantic, copies)
    instance = np.concatenate([np.where(instance > 0, instance + k * num_inst, 0)
                               for k in range(copies)])
  keep = np.sort(rng.choice(len(xyz), num_points, replace=False))
  return xyz[keep], semantic[keep], instance[keep]


def gt_offsets(xyz: np.ndarray, instance: np.ndarray, noise: float,
               rng: np.random.Generator) -> np.ndarray:
  """Instance centre minus point plus N(0, noise) per axis; points of no instance: noise."""
  num = int(instance.max()) + 1
  count = np.bincount(instance, minlength=num)
  centre = np.stack([np.bincount(instance, xyz[:, d].astype(np.float64), minlength=num)
                     for d in range(3)], axis=1) / np.maximum(count, 1)[:, None]
  offsets = np.where(instance[:, None] > 0, centre[instance] - xyz, 0.0)
  return (offsets + rng.normal(0.0, noise, xyz.shape)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Timing.

def timed(fn: Callable[[], object], repeats: int) -> tuple[dict, object]:
  """{'median_s', 'min_s'} of `repeats` runs after one warm-up run, and the last result."""
  result = fn()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    seconds.append(time.perf_counter() - start)
  return {'median_s': round(statistics.median(seconds), 4), 'min_s': round(min(seconds), 4)}, \
      result


def recall_at_half(proposals, instance: np.ndarray, semantic: np.ndarray) -> float:
  """Fraction of ground-truth instances of instance classes (>= MIN_POINTS points) that some
  proposal covers with IoU >= 0.5: a check that the clusters are objects, not a score."""
  iou = proposal_gt_iou(proposals, instance)
  size = np.bincount(instance, minlength=iou.shape[1] + 1)[1:]
  cls = np.full(iou.shape[1], IGNORE_LABEL)
  cls[instance[instance > 0] - 1] = semantic[instance > 0]
  wanted = (size >= MIN_POINTS) & ~np.isin(cls, (*WALL_FLOOR, IGNORE_LABEL))
  if not wanted.any():
    return float('nan')
  best = iou.max(axis=0) if len(iou) else np.zeros(iou.shape[1])
  return float((best[wanted] >= 0.5).mean())


def bench(xyz, semantic, instance, noises, methods, repeats, seed) -> list[dict]:
  rng = np.random.default_rng(seed)
  rows = []
  for noise in noises:
    offsets = gt_offsets(xyz, instance, noise, rng)
    shifted = xyz + offsets
    row = {'noise_m': noise, 'methods': {}}
    for method in methods:
      args = (RADIUS, MIN_POINTS, WALL_FLOOR)
      total, proposals = timed(lambda: propose(xyz, offsets, semantic, *args, method=method),
                               repeats)
      original, ids_o = timed(lambda: cluster_points(xyz, semantic, *args, method=method),
                              repeats)
      dual, ids_s = timed(lambda: cluster_points(shifted, semantic, *args, method=method),
                          repeats)
      row['methods'][method] = {'propose': total, 'original_set': original,
                                'shifted_set': dual}
    row['proposals'] = {'original': int(ids_o.max()) + 1, 'shifted': int(ids_s.max()) + 1}
    row['recall_iou50'] = round(recall_at_half(proposals, instance, semantic), 4)
    rows.append(row)
  return rows


# --------------------------------------------------------------------------------------------
# Report.

def machine() -> dict:
  model = platform.processor() or platform.machine()
  try:
    for line in Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        model = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  return {'cpu': model, 'logical_cpus': os.cpu_count(), 'python': platform.python_version(),
          'numpy': np.__version__, 'scipy': __import__('scipy').__version__,
          'load_average_1m': round(os.getloadavg()[0], 2) if hasattr(os, 'getloadavg') else None}


def markdown_table(rows: list[dict]) -> str:
  lines = ['| offset noise (m) | method | propose median / min (s) | original set (s) | '
           'shifted set (s) | proposals orig + shifted | GT recall @ IoU 0.5 |',
           '|---|---|---|---|---|---|---|']
  for row in rows:
    for method, t in row['methods'].items():
      lines.append(
          f"| {row['noise_m']} | {method} | {t['propose']['median_s']:.3f} / "
          f"{t['propose']['min_s']:.3f} | {t['original_set']['median_s']:.3f} | "
          f"{t['shifted_set']['median_s']:.3f} | {row['proposals']['original']} + "
          f"{row['proposals']['shifted']} | {row['recall_iou50']:.2f} |")
  return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--data', default=str(DEFAULT_DATA), help='the shared/data folder')
  parser.add_argument('--scene', default='scene0000_00')
  parser.add_argument('--synthetic', action='store_true', help='the synthetic room, always')
  parser.add_argument('--points', type=int, default=80_000)
  parser.add_argument('--noise', default='0,0.01,0.03,0.045,0.1',
                      help='offset noise levels, metres per axis, comma separated')
  parser.add_argument('--methods', default='auto',
                      help="cluster_points methods to time, e.g. auto,grid,pairs (pairs "
                           'takes seconds per run at low noise)')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--out', help='JSON report to write')
  args = parser.parse_args(argv)
  pinning = pin_to_one_core()
  rng = np.random.default_rng(args.seed)

  sample = None if args.synthetic else read_scannet(args.data, args.scene)
  if sample is None:
    source = f'synthetic room (seed {args.seed})'
    scene = synthetic_room(args.points, args.seed)
  else:
    source = f'ScanNet {args.scene} ({len(sample.xyz)} points)'
    scene = sample.xyz, sample.semantic, sample.instance
  xyz, semantic, instance = resize(*scene, args.points, rng)
  noises = [float(x) for x in args.noise.split(',')]
  methods = args.methods.split(',')
  rows = bench(xyz, semantic, instance, noises, methods, args.repeats, args.seed)

  headline = [r['methods']['auto']['propose'] for r in rows] if 'auto' in methods else []
  worst = max((t['median_s'] for t in headline), default=float('nan'))
  report = {
      'machine': {**machine(), 'threads': pinning},
      'scene': source, 'points': int(len(xyz)),
      'instance_class_points': int((~np.isin(semantic, (*WALL_FLOOR, IGNORE_LABEL))).sum()),
      'settings': {'radius_m': RADIUS, 'min_points': MIN_POINTS,
                   'ignore_classes': list(WALL_FLOOR), 'repeats': args.repeats},
      'results': rows,
      'worst_median_propose_auto_s': worst,
      'target_s': TARGET_S,
      'meets_target': bool(worst < TARGET_S),
  }
  if args.out:
    Path(args.out).write_text(json.dumps(report, indent=2))
  print(f"{source} -> {len(xyz)} points, {report['instance_class_points']} of instance "
        f"classes; {report['machine']['cpu']}, {pinning}, "
        f"load {report['machine']['load_average_1m']}")
  print(markdown_table(rows))
  print(f'median and min of {args.repeats} runs after a warm-up; worst median of propose '
        f"(auto) {worst:.3f} s against the {TARGET_S:.0f} s target: "
        f"{'met' if report['meets_target'] else 'NOT met'}")


if __name__ == '__main__':
  main()

"""Fixtures of the TFDS builder tests: tiny data sets written in the official layouts."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `pytest tests/tfds` without PYTHONPATH=.
  sys.path.insert(0, str(REPO))

from ws3d_jax.data import ply  # noqa: E402
from ws3d_jax.data.labels import IGNORE_LABEL  # noqa: E402

FIELDS = {  # name -> (dtype, trailing shape); the first axis is the point count unless noted
    'xyz': (np.float32, (3,)), 'semantic': (np.int32, ()), 'instance': (np.int32, ()),
    'normals': (np.float32, (3,)), 'curvature': (np.float32, ()),
    'region_id': (np.int32, ()), 'boundary': (np.bool_, ()),
}


def check_example(ex, num_features, labelled):
  """Every field's dtype / shape and the region invariants, written out independently."""
  assert isinstance(ex['scene_id'], str) and ex['scene_id']
  n = len(ex['xyz'])
  assert n > 0
  for key, (dtype, tail) in FIELDS.items():
    assert ex[key].dtype == dtype, key
    assert ex[key].shape == (n,) + tail, key
  assert ex['features'].dtype == np.float32 and ex['features'].shape == (n, num_features)
  assert np.isfinite(ex['xyz']).all() and np.isfinite(ex['normals']).all()
  np.testing.assert_allclose(np.linalg.norm(ex['normals'], axis=1), 1, atol=1e-4)
  region = ex['region_id']
  q = region.max() + 1
  assert region.min() == 0 and set(np.unique(region)) == set(range(q))  # contiguous, covering
  pairs = ex['region_pairs']
  assert pairs.dtype == np.int32 and pairs.ndim == 2 and pairs.shape[1] == 2
  if len(pairs):
    assert (pairs[:, 0] < pairs[:, 1]).all() and pairs.min() >= 0 and pairs.max() < q
    assert len(np.unique(pairs, axis=0)) == len(pairs)
  sem = ex['semantic']
  assert ((sem == IGNORE_LABEL) | ((sem >= 0) & (sem < 40))).all()
  assert (ex['instance'] >= 0).all()
  if not labelled:
    assert (sem == IGNORE_LABEL).all() and (ex['instance'] == 0).all()
    assert not ex['boundary'].any()


def check_sources(sources, num_features, split_sizes, unlabelled_splits=('test',)):
  assert {s: len(v) for s, v in sources.items()} == split_sizes
  for split, src in sources.items():
    for i in range(len(src)):
      check_example(src[i], num_features, labelled=split not in unlabelled_splits)


def by_id(source):
  return {ex['scene_id']: ex for ex in (source[i] for i in range(len(source)))}


# --------------------------------------------------------------------------------------------
# Tiny geometry: a few planes (floor, walls, a box) so that regions and boundaries are real.

def planes_scene(n, seed, classes=(0, 1, 2)):
  """(xyz (n, 3), class per point) of a floor, a wall and a box top, 1-3 cm spacing."""
  rng = np.random.default_rng(seed)
  k = len(classes)
  part = rng.integers(0, k, n)
  xyz = np.zeros((n, 3))
  uv = rng.uniform(0, 1, (n, 2))
  xyz[part == 0] = np.c_[uv[part == 0] * 1.2, np.zeros((part == 0).sum())]          # floor
  if k > 1:
    xyz[part == 1] = np.c_[uv[part == 1, 0] * 1.2, np.zeros((part == 1).sum()),
                           uv[part == 1, 1] * 0.8]                                    # wall
  if k > 2:
    xyz[part == 2] = np.c_[0.4 + uv[part == 2] * 0.4, np.full((part == 2).sum(), 0.3)]  # box top
  xyz += rng.normal(0, 0.001, xyz.shape)
  return xyz.astype(np.float32), np.asarray(classes)[part]


# --------------------------------------------------------------------------------------------
# SemanticKITTI.

def write_kitti_scan(root, seq, frame, n=600, seed=0, labels=True):
  """A tiny scan in the official format; raw ids 40 (road), 50 (building), 10 (car)."""
  xyz, raw = planes_scene(n, seed, classes=(40, 50, 10))
  rng = np.random.default_rng(seed + 1)
  points = np.c_[xyz * 10, rng.uniform(0, 1, n)].astype('<f4')  # lidar scale: ~10 m
  seq_dir = Path(root) / 'sequences' / f'{seq:02d}'
  (seq_dir / 'velodyne').mkdir(parents=True, exist_ok=True)
  bin_path = seq_dir / 'velodyne' / f'{frame:06d}.bin'
  points.tofile(bin_path)
  label_path = seq_dir / 'labels' / f'{frame:06d}.label'
  if labels:
    label_path.parent.mkdir(parents=True, exist_ok=True)
    inst = np.where(raw == 10, 7, 0).astype(np.uint32)
    (raw.astype(np.uint32) | (inst << 16)).astype('<u4').tofile(label_path)
  return bin_path, label_path


# --------------------------------------------------------------------------------------------
# ScanNet raw layout (the official file formats; see tests/data/test_data_scannet.py).

def write_scannet_raw_scene(scans_dir, scene_id, n=400, seed=0, labels=True):
  xyz, part = planes_scene(n, seed)
  rng = np.random.default_rng(seed)
  rgb = rng.integers(0, 256, (n, 3))
  nyu40 = np.array([2, 1, 7])[part]            # floor, wall, table
  nyu40[:5] = 13                               # a NYU40 class outside the benchmark
  seg_of_vertex = part * 10 + 3                # one segment per part
  groups = [{'id': p, 'objectId': p, 'segments': [p * 10 + 3], 'label': name}
            for p, name in enumerate(['floor', 'wall', 'table'])]
  d = Path(scans_dir) / scene_id
  d.mkdir(parents=True)
  faces = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], 1)
  base = {'x': xyz[:, 0], 'y': xyz[:, 1], 'z': xyz[:, 2],
          'red': rgb[:, 0].astype(np.uint8), 'green': rgb[:, 1].astype(np.uint8),
          'blue': rgb[:, 2].astype(np.uint8), 'alpha': np.full(n, 255, np.uint8)}
  ply.write_ply(d / f'{scene_id}_vh_clean_2.ply', base, faces, comment='VCGLIB generated')
  if labels:
    ply.write_ply(d / f'{scene_id}_vh_clean_2.labels.ply',
                  {**base, 'label': nyu40.astype(np.uint16)}, faces)
    (d / f'{scene_id}_vh_clean_2.0.010000.segs.json').write_text(json.dumps(
        {'params': {'kThresh': '0.0001'}, 'sceneId': f'{scene_id}_vh_clean_2',
         'segIndices': seg_of_vertex.tolist()}))
    (d / f'{scene_id}.aggregation.json').write_text(json.dumps(
        {'sceneId': f'scannet.{scene_id}', 'appId': 'Aggregator.v2', 'segGroups': groups,
         'segmentsFile': f'scannet.{scene_id}_vh_clean_2.0.010000.segs.json'}))
  return xyz, rgb, nyu40, part + 1


# --------------------------------------------------------------------------------------------
# S3DIS official layout.

def write_s3dis_room(root, area, room, seed=0, corrupt=False, n=300):
  """Annotations/<class>_<k>.txt rows "%.3f %.3f %.3f %d %d %d", as the raw release."""
  xyz, part = planes_scene(n, seed)
  rng = np.random.default_rng(seed)
  rgb = rng.integers(0, 256, (n, 3))
  anno = Path(root) / f'Area_{area}' / room / 'Annotations'
  anno.mkdir(parents=True)
  for p, stem in enumerate(['floor_1', 'wall_1', 'table_1']):
    rows = [f'{x:.3f} {y:.3f} {z:.3f} {r} {g} {b}'
            for (x, y, z), (r, g, b) in zip(xyz[part == p], rgb[part == p])]
    if corrupt and p == 1:  # the known defect: a stray control byte in a row
      rows.insert(3, '1.230 4.56\x10 2.340 100 100 100')
    (anno / f'{stem}.txt').write_bytes(('\n'.join(rows) + '\n').encode('latin-1'))
  (anno.parent / f'{room}.txt').write_text('')  # the unused whole-room file
  return anno


@pytest.fixture(scope='session')
def synthetic_tiny(tmp_path_factory):
  """A synthetic data set of 2 + 1 rooms of 2000 points, built once (local, no Beam)."""
  from ws3d_jax.data.build import load_or_build
  data_dir = tmp_path_factory.mktemp('tfds_synthetic')
  config = dict(num_train=2, num_val=1, num_points=2000)
  return data_dir, config, load_or_build('synthetic', data_dir, config=config)

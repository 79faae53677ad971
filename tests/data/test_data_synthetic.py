import time

import numpy as np
import pytest

from ws3d_jax.data import synthetic
from ws3d_jax.data.labels import SYNTHETIC_CLASSES

CLS = {name: i for i, name in enumerate(SYNTHETIC_CLASSES)}


@pytest.fixture(scope='module')
def rooms():
  start = time.perf_counter()
  out = [synthetic.make_room(seed) for seed in range(16)]
  assert time.perf_counter() - start < 10  # 16 rooms in well under a second normally
  return out


def test_room_format(rooms):
  for room in rooms:
    n = len(room['xyz'])
    assert n == 20000
    assert room['xyz'].dtype == np.float32 and room['xyz'].shape == (n, 3)
    assert room['features'].dtype == np.float32 and room['features'].shape == (n, 3)
    assert 0 <= room['features'].min() and room['features'].max() <= 1
    assert room['semantic'].dtype == np.int32 and room['instance'].dtype == np.int32
    assert set(np.unique(room['semantic'])) <= set(range(len(SYNTHETIC_CLASSES)))
    assert np.isfinite(room['xyz']).all()


def test_deterministic_per_seed():
  a, b, c = synthetic.make_room(7), synthetic.make_room(7), synthetic.make_room(8)
  for key in ('xyz', 'features', 'semantic', 'instance'):
    np.testing.assert_array_equal(a[key], b[key])
  assert not np.array_equal(a['xyz'], c['xyz'])
  assert synthetic.make_room(3, num_points=5000)['xyz'].shape == (5000, 3)


def test_instances_are_objects(rooms):
  for room in rooms:
    inst = room['instance']
    ids = np.unique(inst)
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))  # every point, 1..K
    for i in ids:
      assert len(np.unique(room['semantic'][inst == i])) == 1
    # Floor is one instance, each of the four walls another.
    assert len(np.unique(inst[room['semantic'] == CLS['floor']])) == 1
    assert len(np.unique(inst[room['semantic'] == CLS['wall']])) == 4


def test_every_class_occurs_and_has_its_own_geometry(rooms):
  sem = np.concatenate([r['semantic'] for r in rooms])
  z = np.concatenate([r['xyz'][:, 2] for r in rooms])
  counts = np.bincount(sem, minlength=len(SYNTHETIC_CLASSES))
  assert (counts > 0).all(), dict(zip(SYNTHETIC_CLASSES, counts))
  assert counts[CLS['wall']] / counts.sum() < 0.5  # objects are not starved by the walls
  top = {name: np.percentile(z[sem == i], 95) for name, i in CLS.items()}
  assert abs(np.median(z[sem == CLS['floor']])) < 0.02
  assert 0.65 < top['table'] < 0.85
  assert 0.6 < top['chair'] < 1.1
  assert top['bookshelf'] > 1.4
  assert top['door'] > 1.8 and top['wall'] > 2.3
  assert top['clutter'] < top['bookshelf']


def test_scene_ids():
  ids = synthetic.make_split_scene_ids(16, 4)
  assert len(ids['train']) == 16 and len(ids['validation']) == 4
  assert not set(ids['train']) & set(ids['validation'])
  assert synthetic.make_split_scene_ids(32, 4)['validation'] == ids['validation']
  room = synthetic.read_scene(ids['validation'][1])
  assert room['scene_id'] == ids['validation'][1]
  np.testing.assert_array_equal(
      room['xyz'], synthetic.make_room(synthetic.scene_seed(ids['validation'][1]))['xyz'])
  with pytest.raises(ValueError, match='not a synthetic room id'):
    synthetic.scene_seed('scene0000_00')


# --------------------------------------------------------------------------------------------
# Outdoor LiDAR sweeps.

def test_lidar_sweep():
  from ws3d_jax.data import synthetic_lidar
  from ws3d_jax.data.labels import SEMANTICKITTI_CLASSES
  a = synthetic_lidar.make_sweep(5, num_beams=32, num_azimuth=512)
  b = synthetic_lidar.make_sweep(5, num_beams=32, num_azimuth=512)
  for key in ('xyz', 'features', 'semantic', 'instance'):
    np.testing.assert_array_equal(a[key], b[key])
  n = len(a['xyz'])
  assert 10000 < n <= 32 * 512
  assert a['features'].shape == (n, 1) and a['xyz'].dtype == np.float32
  assert np.linalg.norm(a['xyz'][:, :2], axis=1).max() < synthetic_lidar.MAX_RANGE
  names = {SEMANTICKITTI_CLASSES[c] for c in np.unique(a['semantic'])}
  assert {'road', 'sidewalk', 'building', 'car'} <= names
  # Instances only on things (cars, people), one class each.
  things = np.isin(a['semantic'], [SEMANTICKITTI_CLASSES.index(c) for c in ('car', 'person')])
  np.testing.assert_array_equal(a['instance'] > 0, things)
  for i in np.unique(a['instance'][things]):
    assert len(np.unique(a['semantic'][a['instance'] == i])) == 1
  road = a['semantic'] == SEMANTICKITTI_CLASSES.index('road')
  # Sensor frame as in KITTI: the road lies 1.73 m below the sensor.
  assert abs(np.median(a['xyz'][road, 2]) + synthetic_lidar.SENSOR_HEIGHT) < 0.05

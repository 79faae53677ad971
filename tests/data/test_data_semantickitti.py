import numpy as np
import pytest
import yaml

from ws3d_jax.data import semantickitti
from ws3d_jax.data.labels import IGNORE_LABEL


@pytest.fixture
def kitti_root(shared_data):
  return shared_data('semantickitti', 'sequences', '00').parents[1]


def _write_scan(root, seq, frame, points, label=None):
  seq_dir = root / 'sequences' / f'{seq:02d}'
  (seq_dir / 'velodyne').mkdir(parents=True, exist_ok=True)
  bin_path = seq_dir / 'velodyne' / f'{frame:06d}.bin'
  np.asarray(points, np.float32).tofile(bin_path)
  label_path = seq_dir / 'labels' / f'{frame:06d}.label'
  if label is not None:
    label_path.parent.mkdir(exist_ok=True)
    np.asarray(label, np.uint32).tofile(label_path)
  return bin_path, label_path


def _points(n, seed=0):
  return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def test_list_scans_on_real_sample(kitti_root):
  assert semantickitti.list_scans(kitti_root, 'train') == ['00_000000', '00_000001', '00_000002']
  assert semantickitti.list_scans(kitti_root, 'validation') == []
  assert semantickitti.list_scans(kitti_root, 'test') == []


def test_real_scan_labels_match_official_yaml(kitti_root):
  with open(kitti_root / 'semantic-kitti.yaml') as f:
    learning_map = yaml.safe_load(f)['learning_map']
  scene = semantickitti.read_scan(kitti_root, '00_000001')
  raw = np.fromfile(kitti_root / 'sequences/00/labels/000001.label', np.uint32)
  points = np.fromfile(kitti_root / 'sequences/00/velodyne/000001.bin', np.float32).reshape(-1, 4)

  assert scene['scene_id'] == '00_000001'
  assert scene['xyz'].dtype == np.float32 and scene['xyz'].shape == (len(raw), 3)
  assert scene['features'].shape == (len(raw), 1)
  np.testing.assert_array_equal(scene['xyz'], points[:, :3])
  np.testing.assert_array_equal(scene['features'][:, 0], points[:, 3])
  assert scene['semantic'].dtype == np.int32 and scene['instance'].dtype == np.int32

  # Independent path: raw id -> learning id through the yaml, 0 -> ignore, k -> k - 1.
  learn = np.array([learning_map[int(r)] for r in raw & 0xFFFF])
  expected = np.where(learn == 0, IGNORE_LABEL, learn - 1)
  np.testing.assert_array_equal(np.bincount(scene['semantic'], minlength=256),
                                np.bincount(expected, minlength=256))
  np.testing.assert_array_equal(scene['semantic'], expected)


def test_real_scan_instances(kitti_root):
  scene = semantickitti.read_scan(kitti_root, '00_000000')
  raw = np.fromfile(kitti_root / 'sequences/00/labels/000000.label', np.uint32)
  has_instance = (raw >> 16) > 0
  np.testing.assert_array_equal(scene['instance'] > 0, has_instance)
  # One instance id per distinct (class, instance) label, numbered 1..K.
  objects = np.unique(raw[has_instance])
  assert scene['instance'].max() == len(objects)
  pairs = np.unique(np.stack([raw[has_instance], scene['instance'][has_instance]]), axis=1)
  assert pairs.shape[1] == len(objects)


def test_partial_root_and_test_split_without_labels(tmp_path):
  _write_scan(tmp_path, 3, 0, _points(10), np.full(10, 40))
  _write_scan(tmp_path, 3, 1, _points(12), np.full(12, 40))
  _write_scan(tmp_path, 11, 5, _points(7))
  assert semantickitti.list_scans(tmp_path, 'train') == ['03_000000', '03_000001']
  assert semantickitti.list_scans(tmp_path, 'validation') == []
  assert semantickitti.list_scans(tmp_path, 'test') == ['11_000005']
  test_scene = semantickitti.read_scan(tmp_path, '11_000005')
  assert (test_scene['semantic'] == IGNORE_LABEL).all() and (test_scene['instance'] == 0).all()
  assert (semantickitti.read_scan(tmp_path, '03_000001')['semantic'] == 8).all()  # road
  with pytest.raises(ValueError, match='unknown SemanticKITTI split'):
    semantickitti.list_scans(tmp_path, 'val')


def test_truncated_bin(tmp_path):
  bin_path, _ = _write_scan(tmp_path, 0, 0, _points(5), np.zeros(5))
  with open(bin_path, 'ab') as f:
    f.write(b'\0' * 7)
  with pytest.raises(ValueError, match=f'{bin_path}.*truncated'):
    semantickitti.read_scan(tmp_path, '00_000000')


def test_label_length_mismatch(tmp_path):
  _, label_path = _write_scan(tmp_path, 0, 0, _points(5), np.zeros(6))
  with pytest.raises(ValueError, match=f'{label_path}.*6 entries.*5 points'):
    semantickitti.read_scan(tmp_path, '00_000000')


def test_nan_points(tmp_path):
  points = _points(5)
  points[3, 1] = np.nan
  bin_path, _ = _write_scan(tmp_path, 0, 0, points, np.zeros(5))
  with pytest.raises(ValueError, match=f'{bin_path}.*1 of 5 points.*NaN'):
    semantickitti.read_scan(tmp_path, '00_000000')


def test_a_point_far_out_of_range_is_named_at_read_time(tmp_path):
  points = _points(5)
  points[2, 0] = 5e4  # 50 km: a corrupt value; it would fail only at voxelization, after the boundary network
  bin_path, _ = _write_scan(tmp_path, 0, 0, points, np.zeros(5))
  with pytest.raises(ValueError, match=f'{bin_path}: 1 of 5 points lie more than 1000 m .*first rows: \\[2\\]'):
    semantickitti.read_scan(tmp_path, '00_000000')


def test_unknown_raw_id(tmp_path):
  _, label_path = _write_scan(tmp_path, 0, 0, _points(3), [10, 2, 10 | (7 << 16)])
  with pytest.raises(ValueError, match=f'{label_path}.*unknown.*2 \\(1 points\\)'):
    semantickitti.read_scan(tmp_path, '00_000000')


def test_missing_files(tmp_path):
  _, label_path = _write_scan(tmp_path, 8, 0, _points(3))  # validation sequence, no labels
  with pytest.raises(FileNotFoundError, match=str(label_path)):
    semantickitti.read_scan(tmp_path, '08_000000')
  with pytest.raises(ValueError, match=str(label_path)):  # a ValueError for builders too
    semantickitti.read_scan(tmp_path, '08_000000')
  with pytest.raises(FileNotFoundError, match='000009.bin'):
    semantickitti.read_scan(tmp_path, '08_000009')
  with pytest.raises(FileNotFoundError, match='sequences'):
    semantickitti.list_scans(tmp_path / 'nowhere', 'train')


def test_empty_scan_is_named(tmp_path):
  from ws3d_jax.data import semantickitti
  velo = tmp_path / 'sequences' / '00' / 'velodyne'
  velo.mkdir(parents=True)
  (velo / '000000.bin').write_bytes(b'')
  (tmp_path / 'sequences' / '00' / 'labels').mkdir()
  (tmp_path / 'sequences' / '00' / 'labels' / '000000.label').write_bytes(b'')
  with pytest.raises(ValueError, match=r'000000\.bin: empty scan'):
    semantickitti.read_scan(tmp_path, '00_000000')

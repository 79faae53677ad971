import json

import numpy as np
import pytest

from ws3d_jax.data import ply, scannet
from ws3d_jax.data.labels import IGNORE_LABEL

BENCHMARK_NYU40 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)


def _expected_train_ids(nyu40):
  """The benchmark rule, written out independently of the reader's lookup table."""
  out = np.full(len(nyu40), IGNORE_LABEL)
  for train_id, nyu in enumerate(BENCHMARK_NYU40):
    out[nyu40 == nyu] = train_id
  return out


def _same_partition(a, b):
  """True when a and b group the points identically (ids may differ)."""
  pairs = np.unique(np.stack([a, b]), axis=1)
  return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


# --------------------------------------------------------------------------------------------
# Preprocessed .npy layout, on the real samples.

@pytest.fixture
def npy_dir(shared_data):
  return shared_data('scannet', 'scannet_instance_data')


def test_list_npy_scenes(npy_dir):
  ids = scannet.list_npy_scenes(npy_dir)
  assert len(ids) == 10 and ids[0] == 'scene0000_00' and 'scene0003_02' in ids


@pytest.mark.parametrize('scene_id', ['scene0000_00', 'scene0001_01', 'scene0003_02'])
def test_npy_scene_labels_map_exactly(npy_dir, scene_id):
  scene = scannet.read_npy_scene(npy_dir, scene_id)
  vert = np.load(npy_dir / f'{scene_id}_vert.npy')
  sem = np.load(npy_dir / f'{scene_id}_sem_label.npy').astype(np.int64)
  ins = np.load(npy_dir / f'{scene_id}_ins_label.npy').astype(np.int64)

  assert scene['scene_id'] == scene_id
  np.testing.assert_array_equal(scene['xyz'], vert[:, :3])
  np.testing.assert_allclose(scene['features'], vert[:, 3:] / 255, atol=1e-6)
  assert 0 <= scene['features'].min() and scene['features'].max() <= 1
  expected = _expected_train_ids(sem)
  np.testing.assert_array_equal(np.bincount(scene['semantic'], minlength=256),
                                np.bincount(expected, minlength=256))
  np.testing.assert_array_equal(scene['semantic'], expected)
  # Instances: same grouping as the raw ids, 0 kept as "none", ids 1..K.
  np.testing.assert_array_equal(scene['instance'] == 0, ins == 0)
  assert _same_partition(scene['instance'], ins)
  assert scene['instance'].max() == len(np.unique(ins[ins > 0]))


def test_npy_missing_and_bad_files(npy_dir, tmp_path):
  vert = np.load(npy_dir / 'scene0001_00_vert.npy')[:50]
  np.save(tmp_path / 'sceneA_vert.npy', vert)
  with pytest.raises(FileNotFoundError, match='sceneA_sem_label.npy'):
    scannet.read_npy_scene(tmp_path, 'sceneA')
  assert (scannet.read_npy_scene(tmp_path, 'sceneA', with_labels=False)['semantic']
          == IGNORE_LABEL).all()
  np.save(tmp_path / 'sceneA_sem_label.npy', np.full(50, 77, np.uint32))
  np.save(tmp_path / 'sceneA_ins_label.npy', np.zeros(50, np.uint32))
  with pytest.raises(ValueError, match=r'sceneA_sem_label.npy.*77 \(50 points\)'):
    scannet.read_npy_scene(tmp_path, 'sceneA')
  np.save(tmp_path / 'sceneA_sem_label.npy', np.ones(49, np.uint32))
  with pytest.raises(ValueError, match='sceneA_sem_label.npy.*49 entries'):
    scannet.read_npy_scene(tmp_path, 'sceneA')
  vert[3, 0] = np.nan
  np.save(tmp_path / 'sceneA_vert.npy', vert)
  with pytest.raises(ValueError, match='sceneA_vert.npy.*NaN'):
    scannet.read_npy_scene(tmp_path, 'sceneA', with_labels=False)


# --------------------------------------------------------------------------------------------
# PLY.

def test_ply_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  vertex = {'x': rng.random(30, dtype=np.float32), 'y': rng.random(30, dtype=np.float32),
            'z': rng.random(30, dtype=np.float32), 'red': rng.integers(0, 256, 30, np.uint8),
            'label': rng.integers(0, 41, 30).astype(np.uint16)}
  faces = rng.integers(0, 30, (12, 3))
  ply.write_ply(tmp_path / 'm.ply', vertex, faces)
  back = ply.read_ply(tmp_path / 'm.ply')
  for k, v in vertex.items():
    np.testing.assert_array_equal(back['vertex'][k], v)
    assert back['vertex'][k].dtype == v.dtype
  np.testing.assert_array_equal(back['face']['vertex_indices'], faces)


def test_ply_ragged_lists_and_errors(tmp_path):
  header = ('ply\nformat binary_little_endian 1.0\nelement face 2\n'
            'property list uchar int vertex_indices\nelement vertex 1\nproperty float x\n'
            'end_header\n').encode()
  body = (bytes([3]) + np.array([0, 1, 2], '<i4').tobytes() + bytes([4])
          + np.array([0, 1, 2, 3], '<i4').tobytes() + np.array([1.5], '<f4').tobytes())
  (tmp_path / 'r.ply').write_bytes(header + body)
  back = ply.read_ply(tmp_path / 'r.ply')
  assert [list(f) for f in back['face']['vertex_indices']] == [[0, 1, 2], [0, 1, 2, 3]]
  assert back['vertex']['x'].tolist() == [1.5]
  (tmp_path / 't.ply').write_bytes(header + body[:-2])
  with pytest.raises(ValueError, match='t.ply.*truncated'):
    ply.read_ply(tmp_path / 't.ply')
  (tmp_path / 'a.ply').write_bytes(b'ply\nformat ascii 1.0\nend_header\n')
  with pytest.raises(ValueError, match='a.ply.*unsupported PLY format'):
    ply.read_ply(tmp_path / 'a.ply')


# --------------------------------------------------------------------------------------------
# Official raw layout, on fixtures written here in exactly that format.

def _write_raw_scene(scans_dir, scene_id, xyz, rgb, nyu40, seg_of_vertex, seg_groups):
  d = scans_dir / scene_id
  d.mkdir(parents=True)
  n = len(xyz)
  faces = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], 1)
  base = {'x': xyz[:, 0].astype(np.float32), 'y': xyz[:, 1].astype(np.float32),
          'z': xyz[:, 2].astype(np.float32), 'red': rgb[:, 0].astype(np.uint8),
          'green': rgb[:, 1].astype(np.uint8), 'blue': rgb[:, 2].astype(np.uint8),
          'alpha': np.full(n, 255, np.uint8)}
  ply.write_ply(d / f'{scene_id}_vh_clean_2.ply', base, faces, comment='VCGLIB generated')
  ply.write_ply(d / f'{scene_id}_vh_clean_2.labels.ply',
                {**base, 'label': np.asarray(nyu40, np.uint16)}, faces)
  (d / f'{scene_id}_vh_clean_2.0.010000.segs.json').write_text(json.dumps(
      {'params': {'kThresh': '0.0001'}, 'sceneId': f'{scene_id}_vh_clean_2',
       'segIndices': [int(s) for s in seg_of_vertex]}))
  (d / f'{scene_id}.aggregation.json').write_text(json.dumps(
      {'sceneId': f'scannet.{scene_id}', 'appId': 'Aggregator.v2',
       'segGroups': seg_groups,
       'segmentsFile': f'scannet.{scene_id}_vh_clean_2.0.010000.segs.json'}))
  return d


def _toy_scene(tmp_path):
  rng = np.random.default_rng(1)
  n = 120
  xyz, rgb = rng.normal(size=(n, 3)), rng.integers(0, 256, (n, 3))
  seg_of_vertex = np.repeat(np.arange(0, 1200, 100), 10)  # 12 segments, ids 0, 100, ...
  groups = [  # objectIds are 0-based; segment 1100 belongs to no object
      {'id': 0, 'objectId': 0, 'segments': [0, 100, 200], 'label': 'wall'},
      {'id': 1, 'objectId': 1, 'segments': [300], 'label': 'chair'},
      {'id': 2, 'objectId': 2, 'segments': [400, 500, 9999], 'label': 'table'},
      {'id': 3, 'objectId': 3, 'segments': [600, 700, 800, 900, 1000], 'label': 'floor'},
  ]
  object_nyu = {0: 1, 1: 5, 2: 7, 3: 2}
  expected_ins = np.zeros(n, int)
  nyu40 = np.zeros(n, int)
  for g in groups:
    member = np.isin(seg_of_vertex, g['segments'])
    expected_ins[member] = g['objectId'] + 1
    nyu40[member] = object_nyu[g['objectId']]
  nyu40[:3] = 13  # a NYU40 class outside the benchmark: ignored
  _write_raw_scene(tmp_path, 'scene0999_00', xyz, rgb, nyu40, seg_of_vertex, groups)
  return xyz, rgb, nyu40, expected_ins


def test_raw_scene_from_official_files(tmp_path):
  xyz, rgb, nyu40, expected_ins = _toy_scene(tmp_path)
  assert scannet.list_raw_scenes(tmp_path) == ['scene0999_00']
  scene = scannet.read_raw_scene(tmp_path, 'scene0999_00')
  np.testing.assert_allclose(scene['xyz'], xyz.astype(np.float32))
  np.testing.assert_allclose(scene['features'], rgb / 255, atol=1e-6)
  np.testing.assert_array_equal(scene['semantic'], _expected_train_ids(nyu40))
  np.testing.assert_array_equal(scene['instance'], expected_ins)  # already 1..K here
  assert scene['semantic'][:3].tolist() == [IGNORE_LABEL] * 3
  unlabelled = scannet.read_raw_scene(tmp_path, 'scene0999_00', with_labels=False)
  assert (unlabelled['semantic'] == IGNORE_LABEL).all() and (unlabelled['instance'] == 0).all()


def test_raw_layout_matches_npy_layout_on_real_scene(npy_dir, tmp_path):
  """The real scene0001_00 written in the official raw format reads back identically."""
  vert = np.load(npy_dir / 'scene0001_00_vert.npy')
  sem = np.load(npy_dir / 'scene0001_00_sem_label.npy')
  ins = np.load(npy_dir / 'scene0001_00_ins_label.npy').astype(np.int64)
  seg_of_vertex = np.where(ins > 0, ins * 7, 1)  # one segment per object; 1 = unannotated
  groups = [{'id': int(i) - 1, 'objectId': int(i) - 1, 'segments': [int(i) * 7], 'label': 'x'}
            for i in np.unique(ins[ins > 0])]
  _write_raw_scene(tmp_path, 'scene0001_00', vert[:, :3], vert[:, 3:], sem, seg_of_vertex,
                   groups)
  raw = scannet.read_raw_scene(tmp_path, 'scene0001_00')
  npy = scannet.read_npy_scene(npy_dir, 'scene0001_00')
  for key in ('xyz', 'features', 'semantic', 'instance'):
    np.testing.assert_allclose(raw[key], npy[key], atol=1e-6, err_msg=key)


def test_raw_scene_bad_inputs(tmp_path):
  _toy_scene(tmp_path)
  d = tmp_path / 'scene0999_00'
  segs = d / 'scene0999_00_vh_clean_2.0.010000.segs.json'
  segs.write_text(json.dumps({'segIndices': [0] * 119}))
  with pytest.raises(ValueError, match=f'{segs}.*119 entries'):
    scannet.read_raw_scene(tmp_path, 'scene0999_00')
  (d / 'scene0999_00.aggregation.json').unlink()
  segs.write_text(json.dumps({'segIndices': [0] * 120}))
  with pytest.raises(FileNotFoundError, match='scene0999_00.aggregation.json'):
    scannet.read_raw_scene(tmp_path, 'scene0999_00')
  labels_ply = d / 'scene0999_00_vh_clean_2.labels.ply'
  vertex = ply.read_ply(labels_ply)['vertex']
  vertex['label'][5] = 55
  ply.write_ply(labels_ply, vertex)
  with pytest.raises(ValueError, match=f'{labels_ply}.*unknown NYU40 ids: 55'):
    scannet.read_raw_scene(tmp_path, 'scene0999_00')
  with pytest.raises(FileNotFoundError, match='scene0123_00_vh_clean_2.ply'):
    scannet.read_raw_scene(tmp_path, 'scene0123_00')
  # A label file shorter than its mesh (a truncated download) is named, not padded or cut.
  vertex['label'][5] = 3
  ply.write_ply(labels_ply, {k: v[:100] for k, v in vertex.items()})
  with pytest.raises(ValueError, match=f'{labels_ply}: labels.ply has 100 entries but the scan has 120 points'):
    scannet.read_raw_scene(tmp_path, 'scene0999_00')


# --------------------------------------------------------------------------------------------
# Split lists.

def test_split_lists(shared_data, tmp_path):
  splits_dir = shared_data('scannet', 'splits')
  read = lambda split, manual=None: scannet.read_split(split, manual, default_dirs=[splits_dir])
  train, val, test = read('train'), read('validation'), read('test')
  assert (len(train), len(val), len(test)) == (1201, 312, 100)
  assert not (set(train) & set(val)) and not (set(val) & set(test))
  (tmp_path / 'scannetv2_val.txt').write_text('scene0000_00\nscene0000_01\n')
  assert read('validation', tmp_path) == ['scene0000_00', 'scene0000_01']  # manual_dir wins
  assert read('train', tmp_path) == train  # falls back where manual_dir has no file


def test_split_list_missing(tmp_path):
  with pytest.raises(FileNotFoundError, match='scannetv2_test.txt'):
    scannet.read_split('test', tmp_path, default_dirs=())
  with pytest.raises(ValueError, match='unknown ScanNet split'):
    scannet.read_split('val', tmp_path)

"""Each builder builds into a tmp data_dir and reads back through the array_record data source."""
import logging
import os

import numpy as np
import pytest

from tests.conftest import shared_data
from tests.tfds.conftest import (by_id, check_sources, write_kitti_scan, write_s3dis_room,
                                 write_scannet_raw_scene)
from ws3d_jax.data import s3dis, scannet, semantickitti, synthetic, tfds_scenes
from ws3d_jax.data.build import load_or_build
from ws3d_jax.data.labels import IGNORE_LABEL

READER_KEYS = ('xyz', 'features', 'semantic', 'instance')


def _same_as_reader(ex, scene):
  assert ex['scene_id'] == scene['scene_id']
  for key in READER_KEYS:
    np.testing.assert_array_equal(ex[key], scene[key], err_msg=f'{scene["scene_id"]} {key}')


# --------------------------------------------------------------------------------------------
# SemanticKITTI on the real scans: 00 -> train; a fake 08 (validation) and 11 (test) made of
# one scan each, through symlinks.

@pytest.fixture(scope='module')
def kitti_layout(tmp_path_factory):
  real = shared_data('semantickitti')
  root = tmp_path_factory.mktemp('kitti_manual')
  seqs = root / 'sequences'
  seqs.mkdir()
  os.symlink(real / 'sequences' / '00', seqs / '00')
  for seq, labels in (('08', True), ('11', False)):
    (seqs / seq / 'velodyne').mkdir(parents=True)
    os.symlink(real / 'sequences/00/velodyne/000000.bin', seqs / seq / 'velodyne/000000.bin')
    if labels:
      (seqs / seq / 'labels').mkdir()
      os.symlink(real / 'sequences/00/labels/000000.label', seqs / seq / 'labels/000000.label')
  return root


def test_semantic_kitti_real_scans(kitti_layout, tmp_path):
  sources = load_or_build('semantic_kitti', tmp_path, kitti_layout)
  check_sources(sources, 1, {'train': 3, 'validation': 1, 'test': 1})
  train = by_id(sources['train'])
  assert sorted(train) == ['00_000000', '00_000001', '00_000002']
  for sid, ex in train.items():
    _same_as_reader(ex, semantickitti.read_scan(kitti_layout, sid))
    assert ex['boundary'].any() and 0 < ex['boundary'].mean() < 0.5
    assert ex['region_id'].max() > 100 and len(ex['region_pairs']) > 100
  val = sources['validation'][0]
  _same_as_reader(val, semantickitti.read_scan(kitti_layout, '08_000000'))
  np.testing.assert_array_equal(val['xyz'], train['00_000000']['xyz'])
  np.testing.assert_array_equal(val['region_id'], train['00_000000']['region_id'])  # deterministic
  test = sources['test'][0]
  assert test['scene_id'] == '11_000000'
  assert (test['semantic'] == IGNORE_LABEL).all() and not test['boundary'].any()
  assert set(np.unique(train['00_000000']['semantic'])) <= set(range(19)) | {IGNORE_LABEL}
  # A second call finds the complete data set and reads it (no manual_dir needed).
  again = load_or_build('semantic_kitti', tmp_path)
  np.testing.assert_array_equal(by_id(again['train'])['00_000001']['region_id'],
                                train['00_000001']['region_id'])


def test_semantic_kitti_split_lists(tmp_path):
  for seq, frame in ((0, 0), (0, 1), (8, 0), (8, 1), (11, 0)):
    write_kitti_scan(tmp_path, seq, frame, n=50, labels=seq != 11)
  scenes = tfds_scenes.kitti_scenes(tmp_path)
  assert scenes == {'train': ['00_000000', '00_000001'], 'validation': ['08_000000', '08_000001'],
                    'test': ['11_000000']}
  (tmp_path / 'semantickitti_train.txt').write_text('# custom\n08\n00_000001\n')
  (tmp_path / 'semantickitti_val.txt').write_text('00_000000\n03\n')  # 03 absent: left out
  scenes = tfds_scenes.kitti_scenes(tmp_path)
  assert scenes['train'] == ['00_000001', '08_000000', '08_000001']
  assert scenes['validation'] == ['00_000000'] and scenes['test'] == ['11_000000']
  (tmp_path / 'semantickitti_test.txt').write_text('eleven\n')
  with pytest.raises(ValueError, match='semantickitti_test.txt.*eleven'):
    tfds_scenes.kitti_scenes(tmp_path)


# --------------------------------------------------------------------------------------------
# ScanNet: the preprocessed npy layout (real 50k-point subsamples) and the raw layout.

def test_scannet_npy_layout(tmp_path):
  real = shared_data('scannet', 'scannet_instance_data')
  manual = tmp_path / 'manual'
  npy = manual / 'scannet_instance_data'
  npy.mkdir(parents=True)
  for sid, kinds in (('scene0001_00', ('vert', 'sem_label', 'ins_label')),
                     ('scene0002_00', ('vert', 'sem_label', 'ins_label')),
                     ('scene0003_00', ('vert',))):  # a test scene: no labels
    for kind in kinds:
      os.symlink(real / f'{sid}_{kind}.npy', npy / f'{sid}_{kind}.npy')
  (manual / 'scannetv2_train.txt').write_text('scene0001_00\nscene0999_00\n')  # 0999: absent
  (manual / 'scannetv2_val.txt').write_text('scene0002_00\n')
  (manual / 'scannetv2_test.txt').write_text('scene0003_00\n')
  sources = load_or_build('scannet', tmp_path / 'out', manual)
  check_sources(sources, 3, {'train': 1, 'validation': 1, 'test': 1})
  for split, sid in (('train', 'scene0001_00'), ('validation', 'scene0002_00')):
    ex = sources[split][0]
    _same_as_reader(ex, scannet.read_npy_scene(real, sid))
    assert ex['instance'].max() > 1 and ex['boundary'].any()
    assert set(np.unique(ex['semantic'])) <= set(range(20)) | {IGNORE_LABEL}
  test = sources['test'][0]
  _same_as_reader(test, scannet.read_npy_scene(real, 'scene0003_00', with_labels=False))


def test_scannet_raw_layout(tmp_path):
  manual = tmp_path / 'manual'
  xyz, rgb, nyu40, inst = write_scannet_raw_scene(manual / 'scans', 'scene0001_00', seed=1)
  write_scannet_raw_scene(manual / 'scans', 'scene0002_00', seed=2)
  write_scannet_raw_scene(manual / 'scans_test', 'scene0707_00', seed=3, labels=False)
  (manual / 'scannetv2_train.txt').write_text('scene0001_00\n')
  (manual / 'scannetv2_val.txt').write_text('scene0002_00\n')
  # No scannetv2_test.txt here: the official list shipped with the builder is used, and
  # scene0707_00 is its first scene.
  sources = load_or_build('scannet', tmp_path / 'out', manual)
  check_sources(sources, 3, {'train': 1, 'validation': 1, 'test': 1})
  ex = sources['train'][0]
  _same_as_reader(ex, scannet.read_raw_scene(manual / 'scans', 'scene0001_00'))
  np.testing.assert_allclose(ex['xyz'], xyz)
  np.testing.assert_allclose(ex['features'], rgb / 255, atol=1e-6)
  expected = np.array([1, 0, 6])[inst - 1]  # NYU40 2 / 1 / 7 -> training ids 1 / 0 / 6
  expected[:5] = IGNORE_LABEL
  np.testing.assert_array_equal(ex['semantic'], expected)
  np.testing.assert_array_equal(ex['instance'], inst)
  assert ex['boundary'].any()
  assert sources['test'][0]['scene_id'] == 'scene0707_00'


# --------------------------------------------------------------------------------------------
# S3DIS: a tiny official-layout fixture with one corrupt row.

def test_s3dis_official_layout(tmp_path, caplog):
  manual = tmp_path / 'manual'
  write_s3dis_room(manual, 1, 'office_1', seed=1)
  write_s3dis_room(manual, 2, 'storage_1', seed=2)
  write_s3dis_room(manual, 5, 'hallway_6', seed=5, corrupt=True)
  (manual / 'Area_1' / 'Area_1_alignmentAngle.txt').write_text('## office_1 0\n')
  with caplog.at_level(logging.WARNING):
    sources = load_or_build('s3dis', tmp_path / 'out', manual)
  assert 'wall_1.txt: skipped 1 corrupt rows' in caplog.text
  check_sources(sources, 3, {'train': 2, 'validation': 1})
  assert sorted(by_id(sources['train'])) == ['Area_1_office_1', 'Area_2_storage_1']
  val = sources['validation'][0]
  _same_as_reader(val, s3dis.read_room(manual, 'Area_5_hallway_6'))
  assert len(val['xyz']) == 300  # the corrupt row is not a point
  assert set(np.unique(val['semantic'])) == {1, 2, 7}  # floor, wall, table
  assert sorted(np.unique(val['instance'])) == [1, 2, 3]
  # Split lists: rooms or areas.
  (manual / 's3dis_train.txt').write_text('Area_1\n')
  (manual / 's3dis_val.txt').write_text('Area_2_storage_1\nArea_5\n')
  assert tfds_scenes.s3dis_scenes(manual) == {
      'train': ['Area_1_office_1'], 'validation': ['Area_2_storage_1', 'Area_5_hallway_6']}
  (manual / 's3dis_train.txt').unlink()
  (manual / 's3dis_val.txt').unlink()
  assert tfds_scenes.s3dis_scenes(manual, validation_area=2) == {
      'train': ['Area_1_office_1', 'Area_5_hallway_6'], 'validation': ['Area_2_storage_1']}


# --------------------------------------------------------------------------------------------
# Synthetic rooms.

def test_synthetic(synthetic_tiny):
  data_dir, config, sources = synthetic_tiny
  check_sources(sources, 3, {'train': 2, 'validation': 1})
  train = by_id(sources['train'])
  assert sorted(train) == ['room_000000', 'room_000001']
  for sid, ex in train.items():
    _same_as_reader(ex, synthetic.read_scene(sid, 2000))
    assert ex['boundary'].any()
  assert sources['validation'][0]['scene_id'] == synthetic.scene_id(synthetic.VAL_SEED_OFFSET)
  assert (data_dir / 'synthetic' / 'train2_val1_pts2000' / '1.0.0' / 'dataset_info.json').is_file()


def test_synthetic_metadata(synthetic_tiny):
  import tensorflow_datasets as tfds
  from ws3d_jax.data.labels import SYNTHETIC_CLASSES
  from ws3d_jax.geometry.preprocess import DATASET_PARAMS
  data_dir, _, _ = synthetic_tiny
  info = tfds.builder_from_directory(str(data_dir / 'synthetic' / 'train2_val1_pts2000' / '1.0.0')).info
  assert str(info.version) == '1.0.0' and '1.0.0' in (info.release_notes or {})
  meta = info.metadata
  assert meta['classes'] == list(SYNTHETIC_CLASSES) and meta['ignore_label'] == IGNORE_LABEL
  assert meta['preprocess']['max_region_points'] == DATASET_PARAMS['scannet'].max_region_points
  assert meta['skipped_scenes'] == 0 and meta['feature_raw_scale'] == 255.0


def test_features_reach_preprocessing_in_raw_units(monkeypatch):
  """preprocess_scene takes RGB in 0..255 (remission as is); the stored features stay 0..1."""
  import ws3d_jax.geometry.preprocess as preprocess
  from ws3d_jax.data import tfds_features
  seen = {}
  real = preprocess.preprocess_scene

  def spy(xyz, labels=None, ignore_label=255, params=None, features=None):
    seen['features'] = features
    return real(xyz, labels, ignore_label, params)

  monkeypatch.setattr(preprocess, 'preprocess_scene', spy)
  scene = synthetic.read_scene('room_000000', 1500)
  ex = tfds_features.scene_to_example(scene, 'scannet', feature_raw_scale=255.0)
  np.testing.assert_allclose(seen['features'], scene['features'] * 255, rtol=1e-6)
  np.testing.assert_array_equal(ex['features'], scene['features'])

"""Regions on the real data samples (../shared/data): cover, adjacency, size and purity against
a voxel grid with the same number of regions.

Targets from the project brief: point-weighted purity >= 0.97 on ScanNet and >= 0.98 on
SemanticKITTI at a mean region size of at least 30 points. Measured with each data set's
defaults and appearance features (docs/preprocess_results.md): SemanticKITTI 00/000000-000002
0.9826 / 0.9817 / 0.9823, met; ScanNet scene0000_00-02 0.9667 / 0.9657 / 0.9654, short of the
target (xfail with these figures); both at mean size 31.0 and far above the voxel grid.
"""
import numpy as np
import pytest

from tests.conftest import shared_data
from ws3d_jax.bench.scenes import read_kitti, read_scannet
from ws3d_jax.data.labels import IGNORE_LABEL
from ws3d_jax.geometry.preprocess import preprocess_scene
from ws3d_jax.geometry.region_quality import region_purity, voxel_partition_like

TARGET = {'scannet': 0.97, 'semantickitti': 0.98}
FLOOR = {'scannet': 0.96, 'semantickitti': 0.978}   # measured 0.965-0.967 / 0.982-0.983
MIN_MEAN_REGION_SIZE = 30
FIRST = {'scannet': 'scene0000_00', 'semantickitti': '00_000000'}

_cache = {}


def _load(dataset, scene):
  """(xyz, labels, features) of a sample scene; skips when the sample is missing."""
  if dataset == 'scannet':
    root = shared_data('scannet', 'scannet_instance_data', f'{scene}_vert.npy')
    s = read_scannet(root.parents[2], scene)
  else:
    sequence, frame = scene.split('_')
    root = shared_data('semantickitti', 'sequences', sequence, 'velodyne', f'{frame}.bin')
    s = read_kitti(root.parents[4], scene)
  return s.xyz, s.semantic, s.appearance


def _preprocessed(dataset, scene):
  """The scene, its defaults' output with features and its purity, computed once."""
  if (dataset, scene) not in _cache:
    xyz, labels, features = _load(dataset, scene)
    out = preprocess_scene(xyz, labels, IGNORE_LABEL, params=dataset, features=features)
    _cache[dataset, scene] = {
        'dataset': dataset, 'xyz': xyz, 'labels': labels, 'features': features, 'out': out,
        'q': int(out['region_id'].max()) + 1,
        'purity': region_purity(out['region_id'], labels, IGNORE_LABEL),
    }
  return _cache[dataset, scene]


@pytest.fixture(scope='module', params=['scannet', 'semantickitti'])
def sample(request):
  dataset = request.param
  result = _preprocessed(dataset, FIRST[dataset])
  voxel, _ = voxel_partition_like(result['xyz'], result['q'])
  return {**result, 'voxel_q': int(voxel.max()) + 1,
          'voxel_purity': region_purity(voxel, result['labels'], IGNORE_LABEL)}


def test_every_point_in_exactly_one_region(sample):
  region = sample['out']['region_id']
  assert region.shape == (len(sample['xyz']),) and region.dtype == np.int32
  assert np.array_equal(np.unique(region), np.arange(sample['q']))


def test_adjacency_is_a_clean_pair_list(sample):
  pairs = sample['out']['region_pairs']
  assert len(pairs) > sample['q']            # a connected scene: more pairs than regions
  assert np.all(pairs[:, 0] < pairs[:, 1]) and pairs.max() < sample['q']
  assert len(np.unique(pairs, axis=0)) == len(pairs)


def test_boundary_is_a_thin_band(sample):
  assert 0.01 < sample['out']['boundary'].mean() < 0.2


def test_mean_region_size(sample):
  assert len(sample['xyz']) / sample['q'] >= MIN_MEAN_REGION_SIZE


def test_beats_voxel_grid_with_same_region_count(sample):
  assert abs(sample['voxel_q'] - sample['q']) <= 0.02 * sample['q']
  assert sample['purity'] > sample['voxel_purity'] + 0.02, sample['purity']


def test_purity_regression_floor(sample):
  assert sample['purity'] >= FLOOR[sample['dataset']], sample['purity']


@pytest.mark.parametrize('scene', ['00_000000', '00_000001', '00_000002'])
def test_semantickitti_purity_meets_target(scene):
  result = _preprocessed('semantickitti', scene)
  assert len(result['xyz']) / result['q'] >= MIN_MEAN_REGION_SIZE
  assert result['purity'] >= TARGET['semantickitti'], result['purity']


def test_semantickitti_without_features_keeps_the_floor():
  # Remission only adds about 0.0006 purity: geometry alone (features=None) must hold up too.
  result = _preprocessed('semantickitti', FIRST['semantickitti'])
  out = preprocess_scene(result['xyz'], params='semantickitti')
  assert 'boundary' not in out
  assert len(result['xyz']) / (out['region_id'].max() + 1) >= MIN_MEAN_REGION_SIZE
  assert region_purity(out['region_id'], result['labels'], IGNORE_LABEL) >= FLOOR[
      'semantickitti']


@pytest.mark.xfail(reason='known miss: ScanNet purity 0.9667 / 0.9657 / 0.9654 '
                          '(scene0000_00 / 01 / 02) at mean region size 31 with RGB; see '
                          'docs/preprocess_results.md', strict=False)
@pytest.mark.parametrize('scene', ['scene0000_00', 'scene0000_01', 'scene0000_02'])
def test_scannet_purity_meets_target(scene):
  result = _preprocessed('scannet', scene)
  assert len(result['xyz']) / result['q'] >= MIN_MEAN_REGION_SIZE
  assert result['purity'] >= TARGET['scannet'], result['purity']


def test_s3dis_format_stub_runs():
  # 100 points only: a format fixture, so this checks the pipeline runs, not region quality.
  points = np.fromfile(shared_data('s3dis_stub', 'Area_1_office_2_points.bin'), np.float32)
  labels = np.fromfile(shared_data('s3dis_stub', 'Area_1_office_2_semantic_mask.bin'), np.int64)
  xyz, rgb = points.reshape(-1, 6)[:, :3], points.reshape(-1, 6)[:, 3:]
  out = preprocess_scene(xyz, labels, IGNORE_LABEL, params='s3dis', features=rgb)
  assert np.array_equal(np.unique(out['region_id']), np.arange(out['region_id'].max() + 1))
  assert out['boundary'].shape == (len(xyz),)

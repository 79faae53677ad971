"""Regions on the real data samples (../shared/data): cover, adjacency, size and purity against
a voxel grid with the same number of regions.

Targets from the project brief: point-weighted purity >= 0.97 on ScanNet and >= 0.98 on
SemanticKITTI at a mean region size of at least 30 points. Measured (docs/preprocess_results.md):
ScanNet scene0000_00 0.966, SemanticKITTI 00/000000 0.974, both far above the voxel grid
(0.906 / 0.943) but short of the targets; the target tests are marked xfail with these figures
and the regression floors below hold what is reached.
"""
import numpy as np
import pytest

from tests.conftest import shared_data
from ws3d_jax.bench.preprocess import load_scannet_scene, load_semantickitti_scan
from ws3d_jax.data.labels import IGNORE_LABEL
from ws3d_jax.geometry.preprocess import preprocess_scene
from ws3d_jax.geometry.region_quality import region_purity, voxel_partition_like

TARGET = {'scannet': 0.97, 'semantickitti': 0.98}
FLOOR = {'scannet': 0.96, 'semantickitti': 0.97}   # measured 0.966 / 0.974
MIN_MEAN_REGION_SIZE = 30


def _load(dataset):
  if dataset == 'scannet':
    root = shared_data('scannet', 'scannet_instance_data', 'scene0000_00_vert.npy')
    return load_scannet_scene(root.parents[2], 'scene0000_00')
  root = shared_data('semantickitti', 'sequences', '00', 'velodyne', '000000.bin')
  return load_semantickitti_scan(root.parents[4], '00_000000')


@pytest.fixture(scope='module', params=['scannet', 'semantickitti'])
def sample(request):
  dataset = request.param
  xyz, labels = _load(dataset)
  out = preprocess_scene(xyz, labels, IGNORE_LABEL, params=dataset)
  region = out['region_id']
  q = int(region.max()) + 1
  voxel, _ = voxel_partition_like(xyz, q)
  return {
      'dataset': dataset, 'xyz': xyz, 'out': out, 'q': q,
      'purity': region_purity(region, labels, IGNORE_LABEL),
      'voxel_q': int(voxel.max()) + 1,
      'voxel_purity': region_purity(voxel, labels, IGNORE_LABEL),
  }


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
  assert sample['purity'] > sample['voxel_purity'] + 0.02, sample


def test_purity_regression_floor(sample):
  assert sample['purity'] >= FLOOR[sample['dataset']], sample['purity']


@pytest.mark.xfail(reason='known miss: measured purity 0.966 (ScanNet scene0000_00) and 0.974 '
                          '(SemanticKITTI 000000) at mean region size >= 30; see '
                          'docs/preprocess_results.md', strict=False)
def test_purity_meets_target(sample):
  assert sample['purity'] >= TARGET[sample['dataset']], sample['purity']


def test_s3dis_format_stub_runs():
  # 100 points only: a format fixture, so this checks the pipeline runs, not region quality.
  points = np.fromfile(shared_data('s3dis_stub', 'Area_1_office_2_points.bin'), np.float32)
  labels = np.fromfile(shared_data('s3dis_stub', 'Area_1_office_2_semantic_mask.bin'), np.int64)
  xyz = points.reshape(-1, 6)[:, :3]
  out = preprocess_scene(xyz, labels, IGNORE_LABEL, params='s3dis')
  assert np.array_equal(np.unique(out['region_id']), np.arange(out['region_id'].max() + 1))
  assert out['boundary'].shape == (len(xyz),)

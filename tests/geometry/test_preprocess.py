"""preprocess_scene: outputs, parameter forms and bad input."""
import numpy as np
import pytest

from ws3d_jax.geometry.preprocess import (DATASET_PARAMS, PreprocessParams, default_params,
                                          preprocess_scene)
from ws3d_jax.geometry.region_quality import region_purity
from tests.geometry.synthetic import room_corner


@pytest.fixture(scope='module')
def scene():
  xyz, labels = room_corner(spacing=0.04)
  return xyz, labels, preprocess_scene(xyz, labels, ignore_label=255)


def test_outputs(scene):
  xyz, _, out = scene
  n = len(xyz)
  assert set(out) == {'normals', 'curvature', 'region_id', 'region_pairs', 'boundary'}
  assert out['normals'].dtype == np.float32 and out['normals'].shape == (n, 3)
  assert out['curvature'].dtype == np.float32 and out['curvature'].shape == (n,)
  assert out['region_id'].dtype == np.int32 and out['region_id'].shape == (n,)
  q = out['region_id'].max() + 1
  assert np.array_equal(np.unique(out['region_id']), np.arange(q))
  pairs = out['region_pairs']
  assert pairs.dtype == np.int32 and pairs.shape[1] == 2 and len(pairs) > 0
  assert np.all(pairs[:, 0] < pairs[:, 1]) and pairs.max() < q
  assert out['boundary'].dtype == bool and 0 < out['boundary'].sum() < n


def test_no_labels_no_boundary(scene):
  xyz, _, with_labels = scene
  out = preprocess_scene(xyz)
  assert 'boundary' not in out
  assert np.array_equal(out['region_id'], with_labels['region_id'])


def test_parameter_forms_agree(scene):
  xyz, _, out = scene
  for params in (None, PreprocessParams(), {}, 'scannet', default_params('scannet')):
    assert np.array_equal(preprocess_scene(xyz, params=params)['region_id'], out['region_id'])
  coarse = preprocess_scene(xyz, params={'max_region_points': 10**6, 'max_extent': 10.0})
  assert coarse['region_id'].max() < out['region_id'].max()


def test_dataset_defaults_exist():
  assert set(DATASET_PARAMS) == {'scannet', 's3dis', 'semantickitti'}
  with pytest.raises(ValueError, match='known'):
    default_params('kitti360')
  with pytest.raises(ValueError, match='unknown preprocessing parameters'):
    preprocess_scene(np.zeros((10, 3)), params={'max_angle': 5})


@pytest.mark.parametrize('xyz, message', [
    (np.zeros((0, 3)), 'empty'),
    (np.zeros((10, 2)), 'shape'),
    (np.array([[0, 0, 0], [np.nan, 0, 0], [1, 1, 1]]), 'NaN or infinite'),
    (np.array([[0, 0, 0], [np.inf, 0, 0], [1, 1, 1]]), 'NaN or infinite'),
])
def test_bad_points_raise(xyz, message):
  with pytest.raises(ValueError, match=message):
    preprocess_scene(xyz)


def test_bad_labels_raise():
  with pytest.raises(ValueError, match='labels must have shape'):
    preprocess_scene(np.random.default_rng(0).normal(size=(20, 3)), labels=np.zeros(19))


@pytest.mark.parametrize('n', [1, 2, 5])
def test_tiny_clouds(n):
  xyz = np.random.default_rng(n).normal(size=(n, 3))
  out = preprocess_scene(xyz, labels=np.zeros(n, np.int32))
  assert out['region_id'].shape == (n,) and out['region_id'].min() == 0
  assert out['region_pairs'].shape[1] == 2 and out['boundary'].shape == (n,)


def test_features_optional(scene):
  xyz, labels, out = scene
  colour = np.random.default_rng(0).uniform(0, 255, (len(xyz), 3))
  # ScanNet defaults carry no colour weight: features change nothing, and None is the default.
  same = preprocess_scene(xyz, labels, 255, 'scannet', features=colour)
  assert np.array_equal(same['region_id'], out['region_id'])
  # With a colour threshold and merge weight a colour seam cuts the regions of the scene.
  half = (xyz[:, 1] >= 1.0).astype(np.int32)
  seam = (255.0 * half)[:, None].repeat(3, axis=1)
  params = {'max_feature_diff': 0.5, 'feature_weight': 10.0}
  cut = preprocess_scene(xyz, params=params, features=seam)['region_id']
  joined = preprocess_scene(xyz, params=params)['region_id']
  assert region_purity(cut, half, 255) > 0.995 > region_purity(joined, half, 255)


@pytest.mark.parametrize('features, message', [
    (np.zeros((9, 3)), 'features must have shape'),
    (np.zeros((10, 2, 2)), 'features must have shape'),
    (np.full((10,), np.nan), 'NaN or infinite'),
])
def test_bad_features_raise(features, message):
  with pytest.raises(ValueError, match=message):
    preprocess_scene(np.random.default_rng(0).normal(size=(10, 3)), features=features)


def test_mean_region_size_floor(scene):
  xyz, _, out = scene
  q = out['region_id'].max() + 1
  assert len(xyz) / q >= DATASET_PARAMS['scannet'].min_mean_region_size

"""Region growing on hand-built scenes: cover, purity, size limits, noise."""
import numpy as np
import pytest

from ws3d_jax.geometry.knn import knn
from ws3d_jax.geometry.normals import estimate_normals
from ws3d_jax.geometry.oversegment import (contiguous, link_costs, merge_small, merge_to_count,
                                           oversegment, split_large)
from ws3d_jax.geometry.region_quality import region_purity
from tests.geometry.synthetic import grid_plane, room_corner


def _segment(xyz, **kwargs):
  normals, curvature = estimate_normals(xyz, k=10)
  return oversegment(xyz, normals, curvature, **kwargs)


def _assert_partition(region, n):
  """Every point in exactly one region, ids contiguous 0..Q-1."""
  assert region.dtype == np.int32 and region.shape == (n,)
  assert region.min() == 0
  assert np.array_equal(np.unique(region), np.arange(region.max() + 1))


@pytest.fixture(scope='module')
def corner():
  xyz, labels = room_corner()
  return xyz, labels, _segment(xyz)


def test_every_point_in_exactly_one_region(corner):
  xyz, _, region = corner
  _assert_partition(region, len(xyz))


def test_regions_do_not_cross_creases(corner):
  xyz, labels, region = corner
  # Floor, wall and box meet at right angles: only points at the creases may end up in
  # a region of the other surface.
  assert region_purity(region, labels, ignore_label=255) > 0.99


def test_region_size_limits(corner):
  xyz, _, region = corner
  count = np.bincount(region)
  assert count.min() >= 10          # min_region_size
  assert count.max() <= 200         # max_region_points
  for r in range(region.max() + 1):
    span = np.ptp(xyz[region == r], axis=0)
    assert span.max() <= 1.0 + 1e-6   # max_extent


def test_flat_floor_is_split_by_extent_not_left_whole():
  xyz = grid_plane(4.0, 4.0, 0.05)
  region = _segment(xyz, max_extent=1.0, max_region_points=10**6)
  assert region.max() + 1 >= 16     # at least a 4 x 4 grid of 1 m cells
  for r in range(region.max() + 1):
    assert np.ptp(xyz[region == r], axis=0).max() <= 1.0 + 1e-6


def test_outliers_are_absorbed_not_left_as_specks():
  rng = np.random.default_rng(0)
  plane = grid_plane(2.0, 2.0, 0.02)
  outliers = rng.uniform([0, 0, 0.01], [2, 2, 0.05], (300, 3)).astype(np.float32)
  xyz = np.concatenate([plane, outliers])
  region = _segment(xyz, min_region_size=10)
  _assert_partition(region, len(xyz))
  assert np.bincount(region).min() >= 10


def test_deterministic():
  xyz, _ = room_corner(seed=3)
  assert np.array_equal(_segment(xyz), _segment(xyz))


@pytest.mark.parametrize('fragment_normal, joins', [((0, 0, 1.0), 'floor'),
                                                   ((1.0, 0, 0), 'wall')])
def test_merge_small_joins_the_most_similar_surface(fragment_normal, joins):
  # A 5-point fragment in the crease touches both the floor and the wall region; it must join
  # the one its normals continue, not the one it has more links to.
  floor = grid_plane(1.0, 1.0, 0.1)
  wall = grid_plane(1.0, 1.0, 0.1)[:, [2, 1, 0]] - [0.05, 0, 0]
  fragment = np.array([[-0.02, 0.05 + 0.1 * i, 0.02] for i in range(5)], np.float32)
  xyz = np.concatenate([floor, wall, fragment])
  normals = np.concatenate([np.tile([0, 0, 1.0], (len(floor), 1)),
                            np.tile([1.0, 0, 0], (len(wall), 1)),
                            np.tile(fragment_normal, (5, 1))]).astype(np.float32)
  region = np.repeat([0, 1, 2], [len(floor), len(wall), 5])
  merged = merge_small(region, normals, knn(xyz, 8), min_size=10)
  target = merged[0] if joins == 'floor' else merged[len(floor)]
  assert np.all(merged[-5:] == target)
  assert merged[0] != merged[len(floor)]


def test_split_large_halves_at_the_median():
  xyz = np.stack([np.arange(64.0), np.zeros(64), np.zeros(64)], axis=1)
  region = split_large(xyz, np.zeros(64, np.int64), max_points=16, max_extent=np.inf)
  assert sorted(np.bincount(region)) == [16] * 4
  assert np.count_nonzero(np.diff(region)) == 3   # four contiguous runs along the line


def test_split_large_cuts_wide_regions():
  xyz = np.stack([np.linspace(0, 3.9, 40), np.zeros(40), np.zeros(40)], axis=1)
  region = split_large(xyz, np.zeros(40, np.int64), max_points=10**6, max_extent=1.0)
  for r in np.unique(region):
    assert np.ptp(xyz[region == r, 0]) <= 1.0


def _flat(xyz):
  """Exact upward normals and zero curvature, so that only the tested rule can cut."""
  return np.tile(np.float32([0, 0, 1]), (len(xyz), 1)), np.zeros(len(xyz), np.float32)


_NO_CAPS = dict(max_region_points=10**6, max_extent=100.0)


def test_features_cut_growth_between_coplanar_patches():
  xyz = grid_plane(2.0, 1.0, 0.05)
  colour = (xyz[:, 0] >= 1.0).astype(np.float32)   # two halves, same plane
  normals, curvature = _flat(xyz)
  plain = oversegment(xyz, normals, curvature, min_region_size=1, **_NO_CAPS)
  assert plain.max() == 0                          # geometry alone: one region
  for features in (colour, colour[:, None]):
    region = oversegment(xyz, normals, curvature, min_region_size=1, features=features,
                         max_feature_diff=0.5, **_NO_CAPS)
    assert region.max() == 1
    assert region_purity(region, colour.astype(np.int32), ignore_label=255) == 1.0


def test_features_none_is_geometry_only():
  xyz, _ = room_corner(seed=1)
  normals, curvature = estimate_normals(xyz, k=10)
  colour = np.random.default_rng(0).uniform(size=(len(xyz), 3)).astype(np.float32)
  plain = oversegment(xyz, normals, curvature)
  unused = oversegment(xyz, normals, curvature, features=colour)  # weights off: no effect
  assert np.array_equal(plain, unused)
  with pytest.raises(ValueError, match='features must have shape'):
    oversegment(xyz, normals, curvature, features=colour[:-1])


def test_feature_weight_decides_between_coplanar_neighbours():
  # A 5-point fragment on the seam of two coplanar patches joins the one of its colour.
  left = grid_plane(1.0, 1.0, 0.1)
  right = left + [1.1, 0, 0]
  fragment = np.array([[1.05, 0.05 + 0.2 * i, 0.0] for i in range(5)], np.float32)
  xyz = np.concatenate([left, right, fragment])
  normals, _ = _flat(xyz)
  region = np.repeat([0, 1, 2], [len(left), len(right), 5])
  for colour, joins in ((0.0, 0), (1.0, 1)):
    features = np.r_[np.zeros(len(left)), np.ones(len(right)), np.full(5, colour)]
    neighbours = knn(xyz, 8)
    cost = link_costs(xyz, normals, neighbours, features=features[:, None].astype(np.float32),
                      feature_weight=1.0)
    merged = merge_small(region, normals, neighbours, min_size=10, link_cost=cost)
    assert np.all(merged[-5:] == merged[0 if joins == 0 else len(left)])
    assert merged[0] != merged[len(left)]


def test_height_step_cuts_growth_between_level_surfaces():
  # A 4 cm kerb between two level planes: parallel normals, so only the step test cuts.
  xyz = grid_plane(2.0, 1.0, 0.05)
  xyz[:, 2] = np.where(xyz[:, 0] >= 1.0, 0.04, 0.0)
  normals, curvature = _flat(xyz)
  level = (xyz[:, 0] >= 1.0).astype(np.int32)
  plain = oversegment(xyz, normals, curvature, min_region_size=1, **_NO_CAPS)
  assert plain.max() == 0
  region = oversegment(xyz, normals, curvature, min_region_size=1, max_step=0.01,
                       step_slope=0.05, **_NO_CAPS)
  assert region.max() == 1 and region_purity(region, level, ignore_label=255) == 1.0
  # A gentle ramp of the same height is not a step.
  ramp = grid_plane(2.0, 1.0, 0.05)
  ramp[:, 2] = 0.02 * ramp[:, 0]
  assert oversegment(ramp, normals, curvature, min_region_size=1, max_step=0.01,
                     step_slope=0.05, **_NO_CAPS).max() == 0


def test_rough_points_grouped_by_proximity():
  # A bush: points with scattered normals and high curvature, no angle rule can follow them.
  rng = np.random.default_rng(0)
  xyz = rng.uniform(0, 0.5, (600, 3)).astype(np.float32)
  normals = rng.normal(size=(600, 3)).astype(np.float32)
  normals /= np.linalg.norm(normals, axis=1, keepdims=True)
  curvature = np.full(600, 0.3, np.float32)
  by_normals = oversegment(xyz, normals, curvature, min_region_size=1, **_NO_CAPS)
  by_proximity = oversegment(xyz, normals, curvature, min_region_size=1,
                             rough_by_proximity=True, **_NO_CAPS)
  assert by_normals.max() + 1 > 100
  assert by_proximity.max() + 1 <= 3


def test_curvature_averaged_over_neighbours():
  # One rough point on a plane stays smooth when its neighbours' curvature is averaged in,
  # while a rough patch stays rough.
  xyz = grid_plane(1.0, 1.0, 0.05)
  normals, curvature = _flat(xyz)
  curvature[0] = 0.3
  smooth_plane = oversegment(xyz, normals, curvature, min_region_size=1, max_curvature=0.1,
                             curvature_k=8, **_NO_CAPS)
  assert smooth_plane.max() == 0


def test_min_mean_region_size_is_a_floor():
  xyz, _ = room_corner()
  normals, curvature = estimate_normals(xyz, k=10)
  free = oversegment(xyz, normals, curvature, min_region_size=1)
  region = oversegment(xyz, normals, curvature, min_region_size=1, min_mean_region_size=60)
  _assert_partition(region, len(xyz))
  assert len(xyz) / (free.max() + 1) < 60
  assert region.max() + 1 == len(xyz) // 60    # lands on the count, smallest merged first


def test_merge_to_count_lands_on_the_count():
  xyz = grid_plane(1.0, 1.0, 0.05)                 # 400 points
  normals, _ = _flat(xyz)
  neighbours = knn(xyz, 8)
  cost = link_costs(xyz, normals, neighbours)
  for target in (1, 37, 200, 400):
    region = merge_to_count(np.arange(len(xyz)), neighbours, cost, np.inf, target)
    assert region.max() + 1 == target
    _assert_partition(contiguous(region), len(xyz))

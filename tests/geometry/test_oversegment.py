"""Region growing on hand-built scenes: cover, purity, size limits, noise."""
import numpy as np
import pytest

from ws3d_jax.geometry.knn import knn
from ws3d_jax.geometry.normals import estimate_normals
from ws3d_jax.geometry.oversegment import merge_small, oversegment, split_large
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

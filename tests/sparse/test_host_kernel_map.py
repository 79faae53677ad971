"""Host-built kernel maps against the device builder (kernel_map.build_geometry), element for
element, and their counts against the bucket planner's independent count."""
import jax
import numpy as np
import pytest

from ws3d_jax.sparse import buckets, host_kernel_map, kernel_map, keys
from tests.sparse import util


def _pyramid_of(batch, num_levels):
  return host_kernel_map.pyramid(batch.coords[batch.voxel_valid], num_levels)


def _assert_same_tree(host, device):
  h_leaves, h_def = jax.tree.flatten(host)
  d_leaves, d_def = jax.tree.flatten(device)
  assert h_def == d_def
  for h, d in zip(h_leaves, d_leaves):
    d = np.asarray(d)
    assert h.dtype == d.dtype and h.shape == d.shape
    np.testing.assert_array_equal(h, d)


@pytest.mark.parametrize('seed, num_levels, chunk, extents', [
    (0, 3, 8, (12, 8)),  # two scenes of unlike density
    (1, 5, 16, (20,)),  # deeper than the scene: the last levels hold a handful of voxels
    (2, 4, 4, (9, 9, 6)),
])
def test_host_maps_equal_device_maps(seed, num_levels, chunk, extents):
  rng = np.random.default_rng(seed)
  scenes = [util.random_scene(rng, e, fill) for e, fill in zip(extents, (0.15, 0.5, 0.3))]
  batch, device, caps = util.make_batch(scenes, num_levels=num_levels, headroom=1.3, chunk=chunk)
  host = host_kernel_map.geometry(_pyramid_of(batch, num_levels), batch.voxel_valid, batch.point2voxel,
                                  batch.point_valid, caps, (chunk,) * num_levels)
  _assert_same_tree(host, device)
  assert host.capacity == device.capacity


def test_levels_without_a_pair_map_and_key_edges():
  """Voxels on the key range's far faces (where a careless key wraps into a neighbour), and
  'dense' levels (no pair map)."""
  rng = np.random.default_rng(3)
  pts = rng.integers(0, 6, (200, 3)).astype(np.float32) + 0.5
  pts[:30, 2] = keys.MAX_COORD + 0.5 - rng.integers(0, 2, 30)
  pts[30:60, 1] = keys.MAX_COORD + 0.5
  scene = (pts, rng.standard_normal((len(pts), 2)).astype(np.float32))
  batch, _, caps = util.make_batch([scene], num_levels=2, headroom=1.2)
  device = jax.jit(kernel_map.build_geometry, static_argnums=(4, 5, 6))(
      batch.coords, batch.voxel_valid, batch.point2voxel, batch.point_valid, caps.voxels, caps.pairs, (None, 8))
  host = host_kernel_map.geometry(_pyramid_of(batch, 2), batch.voxel_valid, batch.point2voxel, batch.point_valid,
                                  caps, (None, 8))
  assert host.pairs[0] is None
  _assert_same_tree(host, device)


def test_pyramid_counts_equal_the_planners_count():
  rng = np.random.default_rng(4)
  batch, _, _ = util.make_batch([util.random_scene(rng, 14, 0.2), util.random_scene(rng, 7, 0.6)], num_levels=4)
  real = batch.coords[batch.voxel_valid]
  assert _pyramid_of(batch, 4).counts(123) == buckets.count_structure(real, 123, 4)


def test_capacities_below_the_counts_are_refused_with_the_numbers():
  rng = np.random.default_rng(5)
  batch, _, caps = util.make_batch([util.random_scene(rng, 10, 0.3)], num_levels=3)
  small = buckets.Capacities(voxels=(caps.voxels[0], 8, 8), pairs=caps.pairs, points=caps.points)
  with pytest.raises(ValueError, match=r'voxels at level 1 needs \d+ but the bucket holds 8'):
    host_kernel_map.geometry(_pyramid_of(batch, 3), batch.voxel_valid, batch.point2voxel, batch.point_valid,
                             small, (8,) * 3)

"""Kernel maps against brute-force numpy, and the capacity / bad-input contract."""
import jax.numpy as jnp
import numpy as np
import pytest

from ws3d_jax.sparse import buckets, kernel_map, keys, ops, voxelize
from tests.sparse import util


def _brute_neighbours(coords, valid):
  index = {tuple(c): i for i, c in enumerate(coords) if valid[i]}
  n = len(coords)
  out = np.full((n, 27), n, np.int32)
  for i, c in enumerate(coords):
    if not valid[i]:
      continue
    for d, off in enumerate(kernel_map.OFFSETS):
      out[i, d] = index.get((c[0], c[1] + off[0], c[2] + off[1], c[3] + off[2]), n)
  return out


def test_neighbours_match_brute_force_including_key_edges():
  rng = np.random.default_rng(0)
  # Voxels on both faces of the key range, where a careless key would wrap into a neighbour.
  pts = rng.integers(0, 6, (300, 3))
  pts[:40, 2] = keys.MAX_COORD - rng.integers(0, 2, 40)
  pts[40:80, 1] = keys.MAX_COORD
  coords = np.unique(np.concatenate([rng.integers(0, 3, (300, 1)), pts], 1), axis=0).astype(np.int32)
  order = np.argsort(keys.host_keys(coords))
  coords = np.concatenate([coords[order], np.zeros((17, 4), np.int32)])
  valid = np.arange(len(coords)) < len(order)
  level = kernel_map.level_from_coords(jnp.asarray(coords), jnp.asarray(valid))
  np.testing.assert_array_equal(np.asarray(level.nbr), _brute_neighbours(coords, valid))


def test_downsample_and_point_maps_match_numpy():
  rng = np.random.default_rng(1)
  scenes = [util.random_scene(rng, 12, 0.2), util.random_scene(rng, 8, 0.4)]
  batch, geom, caps = util.make_batch(scenes, num_levels=4)
  point_voxel0 = batch.coords[np.minimum(batch.point2voxel, len(batch.coords) - 1)]
  for level in range(4):
    lv = geom.levels[level]
    valid = np.asarray(lv.valid)
    expected = np.unique(np.concatenate([batch.coords[batch.voxel_valid][:, :1],
                                         batch.coords[batch.voxel_valid][:, 1:] >> level], 1), axis=0)
    np.testing.assert_array_equal(np.asarray(lv.coords)[valid], expected)  # key order = lexicographic
    assert not valid[len(expected):].any()
    # Each point lands in the voxel that holds its coordinates at this stride.
    p2v = np.asarray(geom.point2voxel[level])[batch.point_valid]
    want = np.concatenate([point_voxel0[:, :1], point_voxel0[:, 1:] >> level], 1)[batch.point_valid]
    np.testing.assert_array_equal(np.asarray(lv.coords)[p2v], want)
  # The down map's pairs hold every real fine voxel once, with its parent and its slot.
  down = geom.down[0]
  parent, slot = np.asarray(down.parent), np.asarray(down.slot)
  ins, outs = np.asarray(down.pairs.in_idx), np.asarray(down.pairs.out_idx)
  offset = np.broadcast_to(np.asarray(down.pairs.offset)[:, None], ins.shape)
  real = ins < len(parent)
  assert sorted(ins[real]) == list(np.flatnonzero(batch.voxel_valid))
  np.testing.assert_array_equal(outs[real], parent[ins[real]])
  np.testing.assert_array_equal(offset[real], slot[ins[real]])
  assert (outs[~real] == down.coarse).all()


def test_neighbour_map_is_mirror_symmetric():
  _, geom, _ = util.make_batch([util.random_scene(np.random.default_rng(2), 10, 0.3)])
  nbr = np.asarray(geom.levels[0].nbr)
  n = len(nbr)
  for i, j in zip(*np.nonzero(nbr < n)):
    assert nbr[nbr[i, j], 26 - j] == i


def test_host_counts_equal_device_counts():
  rng = np.random.default_rng(3)
  batch, geom, caps = util.make_batch([util.random_scene(rng, 14, 0.15), util.random_scene(rng, 9, 0.5)],
                                      num_levels=4)
  counts = buckets.count_structure(batch.coords[batch.voxel_valid], int(batch.point_valid.sum()), 4)
  np.testing.assert_array_equal(np.asarray(geom.needed), list(counts.voxels) + list(counts.pairs))
  kernel_map.check_capacity(geom.needed, geom.capacity)  # no overflow in the planned path


def test_device_overflow_is_reported_with_sizes():
  rng = np.random.default_rng(4)
  batch, _, caps = util.make_batch([util.random_scene(rng, 10, 0.3)], num_levels=3)
  small = buckets.Capacities(voxels=(caps.voxels[0], 8, 8), pairs=caps.pairs, points=caps.points)
  geom = util.build(batch, small, 8)
  with pytest.raises(ValueError, match=r'voxels at level 1 needs \d+ but the bucket holds 8'):
    kernel_map.check_capacity(geom.needed, geom.capacity)


def test_bucket_ladder_bounds_shapes():
  profile = buckets.BucketProfile(voxel_ratio=(1.0, 0.5), pair_ratio=(4.0, 3.0), point_ratio=2.0)
  seen = set()
  for n in range(1000, 5000, 37):
    counts = buckets.StructureCounts(voxels=(n, n // 2), pairs=(3 * n, n), points=2 * n)
    caps = profile.plan(counts)
    assert all(c >= v for c, v in zip(caps.voxels + caps.pairs + (caps.points,),
                                       counts.voxels + counts.pairs + (counts.points,)))
    seen.add(caps)
  assert len(seen) <= 8  # a 5x size range is ~7 rungs of 1.25


def test_a_raised_lowest_rung_holds_every_smaller_batch_once():
  """buckets.pin: min_voxels at the largest batch's scale puts every batch on one rung."""
  import dataclasses  # noqa: PLC0415
  profile = buckets.BucketProfile(voxel_ratio=(1.0, 0.5), pair_ratio=(4.0, 3.0), point_ratio=2.0)
  batches = [buckets.StructureCounts(voxels=(n, n // 2), pairs=(3 * n, n), points=int(1.75 * n))
             for n in range(1000, 5000, 37)]
  pinned = dataclasses.replace(profile, min_voxels=int(max(profile.scale(c) for c in batches)) + 1)
  seen = set()
  for counts in batches:
    caps = pinned.plan(counts)
    assert all(c >= v for c, v in zip(caps.voxels + caps.pairs + (caps.points,),
                                       counts.voxels + counts.pairs + (counts.points,)))
    seen.add(caps)
  assert len(seen) == 1
  bigger = buckets.StructureCounts(voxels=(6000, 3000), pairs=(20000, 6000), points=9000)
  assert pinned.plan(bigger).voxels[0] >= 6000 and pinned.plan(bigger) not in seen


@pytest.mark.parametrize('xyz, message', [
    (np.zeros((0, 3), np.float32), 'empty scene'),
    (np.array([[0, 0, 0], [np.nan, 1, 1]], np.float32), 'NaN/inf'),
    (np.array([[0, 0, 0], [0, np.inf, 1]], np.float32), 'NaN/inf'),
    (np.array([[0, 0, 0], [5000.0, 0, 0]], np.float32), 'key holds at most 65536'),
])
def test_bad_scenes_are_named(xyz, message):
  with pytest.raises(ValueError, match=f'scan_42.*{message}'):
    voxelize.voxelize_scene(xyz, np.ones((len(xyz), 1), np.float32), 0.05, name='scan_42')


def test_collate_overflow_names_the_size():
  scene = voxelize.voxelize_scene(np.random.default_rng(0).random((500, 3)).astype(np.float32) * 4,
                                  np.ones((500, 1), np.float32), 0.5)
  with pytest.raises(ValueError, match=rf'has {len(scene.coords)} voxels but the bucket holds 10'):
    voxelize.collate([scene], 10, 1000)


def test_voxel_features_are_means():
  xyz = np.array([[0.1, 0.1, 0.1], [0.2, 0.3, 0.4], [1.5, 0.1, 0.1]], np.float32)
  feats = np.array([[1.0], [3.0], [5.0]], np.float32)
  v = voxelize.voxelize_scene(xyz, feats, 1.0)
  np.testing.assert_allclose(v.features[:, 0], [2.0, 5.0])
  np.testing.assert_array_equal(v.point2voxel, [0, 0, 1])


def test_segment_pool_against_numpy():
  rng = np.random.default_rng(5)
  x = rng.standard_normal((50, 3)).astype(np.float32)
  ids = rng.integers(-1, 7, 50)  # -1 = padding, group 6 may be empty
  ids[ids == 6] = 5
  mx, cnt = ops.segment_pool(jnp.asarray(x), jnp.asarray(ids), 7, 'max')
  mean, _ = ops.segment_pool(jnp.asarray(x), jnp.asarray(ids), 7, 'mean')
  for g in range(7):
    rows = x[ids == g]
    assert int(cnt[g]) == len(rows)
    np.testing.assert_allclose(mx[g], rows.max(0) if len(rows) else 0, rtol=1e-6)
    np.testing.assert_allclose(mean[g], rows.mean(0) if len(rows) else 0, rtol=1e-5)

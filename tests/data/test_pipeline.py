"""Input pipeline: augmentation invariants, region batching, two views, determinism."""
import numpy as np
import pytest

from ws3d_jax import sparse
from ws3d_jax.data import augment as aug
from ws3d_jax.data import pipeline
from ws3d_jax.train import run_builder
from ws3d_jax.data.labels import IGNORE_LABEL


def _scene(seed, n=400):
  rng = np.random.default_rng(seed)
  xyz = rng.uniform(0, 2, (n, 3)).astype(np.float32)
  region = (xyz[:, 0] > 1).astype(np.int32) + 2 * (xyz[:, 1] > 1)
  return {'scene_id': f's{seed}', 'xyz': xyz, 'features': rng.random((n, 3)).astype(np.float32),
          'semantic': rng.integers(0, 4, n).astype(np.int32), 'region_id': region.astype(np.int32),
          'region_pairs': np.array([[0, 1], [0, 2], [1, 3], [2, 3]], np.int32),
          'pair_boundary': np.array([1, 0, 0, 1], np.float32)}


def _profile(scenes):
  batcher = pipeline.Batcher(0.1, sparse.BucketProfile((1.0,) * 5, (27.0,) * 5, 10.0, 10.0, 10.0))
  batch = batcher([pipeline.make_element(s, np.random.default_rng(0), aug.AugmentParams(), 2) for s in scenes])
  v = batch.views[0]
  counts = sparse.count_structure(v.coords[v.voxel_valid], int(v.point_valid.sum()), 5,
                                  int(batch.regions.valid.sum()), int(batch.regions.pair_valid.sum()))
  return sparse.BucketProfile.from_counts(counts, headroom=1.3, min_voxels=64)


def test_augment_is_rigid_up_to_scale_and_keeps_points():
  s = _scene(0)
  p = aug.AugmentParams(scale=(1.0, 1.0), jitter=0.0, colour_jitter=0.0)
  xyz, feats = aug.augment(s['xyz'], s['features'], np.random.default_rng(1), p)
  d0 = np.linalg.norm(s['xyz'][:50, None] - s['xyz'][None, :50], axis=-1)
  d1 = np.linalg.norm(xyz[:50, None] - xyz[None, :50], axis=-1)
  np.testing.assert_allclose(d0, d1, atol=1e-5)
  np.testing.assert_allclose(xyz[:, 2] - xyz[:, 2].mean(), s['xyz'][:, 2] - s['xyz'][:, 2].mean(), atol=1e-5)
  np.testing.assert_array_equal(feats, s['features'])
  with pytest.raises(ValueError, match='unknown augmentation field'):
    run_builder.augment_params({'rotat': 1.0})


def test_subset_scene_renumbers_regions_and_drops_their_pairs():
  s = _scene(1)
  keep = s['region_id'] != 1
  sub = pipeline.subset_scene(s, keep)
  assert len(sub['xyz']) == keep.sum() and len(sub['semantic']) == keep.sum()
  assert sorted(np.unique(sub['region_id'])) == [0, 1, 2]  # old 0, 2, 3
  np.testing.assert_array_equal(sub['region_pairs'], [[0, 1], [1, 2]])  # (0,2), (2,3) survive
  np.testing.assert_array_equal(sub['pair_boundary'], [0, 1])


def test_two_view_batch_shares_capacities_and_regions():
  scenes = [_scene(2), _scene(3, 300)]
  batcher = pipeline.Batcher(0.1, _profile(scenes))
  rng = np.random.default_rng(4)
  batch = batcher([pipeline.make_element(s, rng, aug.AugmentParams(), 2) for s in scenes])
  caps = batch.caps
  for view in batch.views:
    assert view.coords.shape[0] == caps.voxels[0]
    assert view.point_valid.sum() == 700
  # The views are different voxelizations of the same points.
  assert not np.array_equal(batch.views[0].point2voxel, batch.views[1].point2voxel)
  labels = batch.labels
  np.testing.assert_array_equal(labels[:700], np.concatenate([s['semantic'] for s in scenes]))
  assert (labels[700:] == IGNORE_LABEL).all()
  # Regions are numbered globally: the second scene's regions come after the first's four.
  assert batch.regions.valid.sum() == 8
  np.testing.assert_array_equal(batch.regions.id[400:700], scenes[1]['region_id'] + 4)
  assert (batch.regions.id[700:] == caps.regions).all()
  np.testing.assert_array_equal(batch.regions.pairs[4:8], scenes[1]['region_pairs'] + 4)
  np.testing.assert_array_equal(batch.regions.scene[:8], [0] * 4 + [1] * 4)


def test_stream_is_seeded_and_prefetched():
  scenes = [_scene(i, 200 + 20 * i) for i in range(5)]
  batcher = pipeline.Batcher(0.1, _profile(scenes[:2]))
  take = lambda seed: [next(it) for it in [pipeline.training_stream(scenes, 2, seed, batcher, aug.AugmentParams(),
                                                                   num_views=2)] for _ in range(3)]
  a, b, c = take(7), take(7), take(8)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x.scene_id, y.scene_id)
    np.testing.assert_array_equal(x.views[1].features, y.views[1].features)
  assert any(not np.array_equal(x.scene_id, y.scene_id) for x, y in zip(a, c))
  with pytest.raises(ValueError, match='empty'):
    pipeline.training_stream([], 2, 0, batcher, aug.AugmentParams())


def test_sharded_batch_pads_every_device_to_the_same_capacities():
  scenes = [_scene(10, 500), _scene(11, 200), _scene(12, 300), _scene(13, 250)]
  elements = [dict(pipeline.make_element(s, np.random.default_rng(i), aug.AugmentParams(), 2), labeled=i % 2 == 0)
              for i, s in enumerate(scenes)]
  flat = pipeline.Batcher(0.1, _profile(scenes[:2]))
  batcher = pipeline.Batcher(0.1, flat.profile, num_shards=2)
  batch = batcher(elements)
  caps = batch.caps
  assert batch.views[0].coords.shape[:2] == (2, caps.voxels[0])
  # Device 0 holds scenes 0 and 1, device 1 scenes 2 and 3, each with its own region numbering.
  assert batch.views[0].point_valid[0].sum() == 700 and batch.views[1].point_valid[1].sum() == 550
  np.testing.assert_array_equal(batch.labels[1][:300], scenes[2]['semantic'])
  assert batch.regions.valid[0].sum() == 8 and batch.regions.valid[1].sum() == 8
  np.testing.assert_array_equal(batch.regions.labeled[1][:8], [True] * 4 + [False] * 4)
  # The shared capacities fit the larger shard: a flat batch of its scenes plans the same.
  assert flat(elements[:2]).caps == caps
  with pytest.raises(ValueError, match='do not split over 2 devices'):
    batcher(elements[:3])


def test_ws3d_stream_mixes_branches_and_resumes_at_a_step():
  lab = [dict(_scene(i, 200 + 10 * i), labeled=True) for i in range(3)]
  unl = [dict(_scene(10 + i, 200 + 10 * i), labeled=False) for i in range(4)]
  batcher = pipeline.Batcher(0.1, _profile(lab[:2]))
  stream = lambda start: pipeline.ws3d_stream(lab, unl, 1, 2, 5, batcher, aug.AugmentParams(), start_step=start)
  full = stream(0)
  batches = [next(full) for _ in range(4)]
  for b in batches:
    assert b.scene_id[0] in {s['scene_id'] for s in lab}
    assert set(b.scene_id[1:]) <= {s['scene_id'] for s in unl}
    assert b.regions.labeled[:4].all() and not b.regions.labeled[4:b.regions.valid.sum()].any()
  resumed = next(stream(3))
  np.testing.assert_array_equal(resumed.scene_id, batches[3].scene_id)
  np.testing.assert_array_equal(resumed.views[1].features, batches[3].views[1].features)
  with pytest.raises(ValueError, match='unlabeled set is empty'):
    pipeline.ws3d_stream(lab, [], 1, 2, 5, batcher, aug.AugmentParams())

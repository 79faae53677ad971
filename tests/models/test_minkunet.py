"""MinkUNet: padding invariance, batch invariance, dataflow equivalence, bounded compiles."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ws3d_jax import sparse
from ws3d_jax.models import minkunet
from tests.sparse import util

TINY = minkunet.BackboneSpec(blocks=minkunet.PRESETS['minkunet14'], planes=(8,) * 8, stem=8, chunk=16)


def _scenes(seed, sizes=((12, 0.2), (10, 0.3))):
  rng = np.random.default_rng(seed)
  return [util.random_scene(rng, extent, fill, channels=3) for extent, fill in sizes]


def _profile(scenes, headroom):
  batch, _ = sparse.prepare_batch(scenes, 1.0, sparse.BucketProfile(
      voxel_ratio=(1.0,) + (1.0,) * 4, pair_ratio=(26.0,) * 5, point_ratio=1.0, min_voxels=64), 5)
  coords = batch.coords[batch.voxel_valid]
  counts = sparse.count_structure(coords, int(batch.point_valid.sum()), 5)
  return sparse.BucketProfile.from_counts(counts, headroom=headroom, min_voxels=64, align=8)


@functools.partial(jax.jit, static_argnames=('caps', 'spec', 'train', 'dtype'))
def _forward(variables, batch, caps, spec, train, dtype=jnp.float32):
  geom = sparse.geometry_of(batch, caps, spec.chunk_sizes())
  model = minkunet.MinkUNet(num_classes=5, spec=spec, dtype=dtype)
  out = model.apply(variables, batch['features'], geom, train=train, mutable=['batch_stats'] if train else False)
  return out[0] if train else out


def _run(variables, scenes, profile, spec=TINY, train=True, dtype=jnp.float32):
  batch, caps = sparse.prepare_batch(scenes, 1.0, profile, 5)
  arrays = {k: jnp.asarray(getattr(batch, k)) for k in ('coords', 'features', 'voxel_valid', 'point2voxel',
                                                         'point_valid')}
  out = _forward(variables, arrays, caps, spec, train, dtype)
  return np.asarray(out.logits)[batch.point_valid], out, caps


def _init(scenes, spec=TINY):
  batch, caps = sparse.prepare_batch(scenes, 1.0, _profile(scenes, 1.0), 5)

  @jax.jit
  def init(batch):
    geom = sparse.geometry_of(batch, caps, spec.chunk_sizes())
    return minkunet.MinkUNet(num_classes=5, spec=spec).init(jax.random.PRNGKey(0), batch['features'], geom)

  return init({k: jnp.asarray(v) for k, v in vars(batch).items()})


def test_outputs_and_stages():
  scenes = _scenes(0)
  variables = _init(scenes)
  logits, out, caps = _run(variables, scenes, _profile(scenes, 1.0))
  assert logits.shape == (sum(len(s[0]) for s in scenes), 5)
  assert np.isfinite(logits).all() and np.abs(logits).max() > 0
  assert [s.shape[0] for s in out.stages] == list(caps.voxels)
  assert [s.shape[1] for s in out.stages] == [8] * 5


def test_padding_invariance():
  scenes = _scenes(1)
  variables = _init(scenes)
  profile = _profile(scenes, 1.0)
  tight, _, caps_a = _run(variables, scenes, profile)
  loose, _, caps_b = _run(variables, scenes, dataclasses.replace(profile, min_voxels=2 * caps_a.voxels[0]))
  assert caps_b.voxels[0] > caps_a.voxels[0] and caps_b.pairs[0] > caps_a.pairs[0]
  np.testing.assert_allclose(tight, loose, atol=1e-4)


def test_batch_invariance():
  scenes = _scenes(2)
  variables = _init(scenes)
  profile = _profile(scenes, 1.5)
  together, _, _ = _run(variables, scenes, profile, train=False)
  alone = np.concatenate([_run(variables, [s], profile, train=False)[0] for s in scenes])
  np.testing.assert_allclose(together, alone, atol=1e-4)


def test_pairs_and_dense_dataflows_agree():
  scenes = _scenes(3)
  dense_spec = dataclasses.replace(TINY, impl=('dense',) * 5)
  variables = _init(scenes)
  profile = _profile(scenes, 1.0)
  a, _, _ = _run(variables, scenes, profile, TINY)
  b, _, _ = _run(variables, scenes, profile, dense_spec)
  np.testing.assert_allclose(a, b, atol=1e-4)


def test_bfloat16_compute_tracks_the_float32_reference():
  scenes = _scenes(4)
  variables = _init(scenes)
  profile = _profile(scenes, 1.0)
  reference, _, _ = _run(variables, scenes, profile, train=False)
  low, out, _ = _run(variables, scenes, profile, train=False, dtype=jnp.bfloat16)
  assert out.logits.dtype == jnp.float32 and out.stages[2].dtype == jnp.bfloat16
  error = np.linalg.norm(low - reference) / np.linalg.norm(reference)
  assert 0 < error < 0.05, error  # bf16 keeps ~3 significant digits; parameters stay float32


@pytest.mark.slow  # compiles the network for several buckets
def test_compile_count_is_bounded_by_buckets():
  scenes = _scenes(4)
  variables = _init(scenes)
  profile = _profile(scenes, 1.2)
  traces = []

  @functools.partial(jax.jit, static_argnames=('caps',))
  def step(variables, batch, caps):
    traces.append(caps)
    def loss(params):
      geom = sparse.geometry_of(batch, caps, TINY.chunk_sizes())
      out, _ = minkunet.MinkUNet(num_classes=5, spec=TINY).apply(
          {**variables, 'params': params}, batch['features'], geom, train=True, mutable=['batch_stats'])
      return jnp.sum(out.logits ** 2)
    return jax.grad(loss)(variables['params'])

  rng = np.random.default_rng(5)
  seen = set()
  for _ in range(8):
    extent = int(rng.integers(9, 14))
    batch_scenes = [util.random_scene(rng, extent, float(rng.uniform(0.15, 0.3)), channels=3)]
    batch, caps = sparse.prepare_batch(batch_scenes, 1.0, profile, 5)
    seen.add(caps)
    arrays = {k: jnp.asarray(getattr(batch, k)) for k in ('coords', 'features', 'voxel_valid', 'point2voxel',
                                                           'point_valid')}
    jax.block_until_ready(step(variables, arrays, caps))
  assert len(traces) == len(seen)  # one compile per bucket, none per scene
  assert len(seen) < 8

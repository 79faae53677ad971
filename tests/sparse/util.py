"""Random sparse scenes and their kernel maps, for testing the layers (their dense references:
ws3d_jax.sparse.reference)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ws3d_jax.sparse import buckets, kernel_map, voxelize


def random_scene(rng, extent=10, fill=0.3, channels=4):
  """A random set of occupied voxels in an extent^3 box (one point per voxel centre)."""
  occupied = np.argwhere(rng.random((extent,) * 3) < fill)
  xyz = (occupied + 0.5).astype(np.float32)
  return xyz, rng.standard_normal((len(xyz), channels)).astype(np.float32)


def make_batch(scenes, num_levels=3, headroom=1.0, chunk=8, profile=None):
  """Voxelizes (xyz, feats) scenes with voxel size 1 and builds every kernel map."""
  vox = [voxelize.voxelize_scene(xyz, f, 1.0) for xyz, f in scenes]
  num_points = sum(len(xyz) for xyz, _ in scenes)
  raw = np.concatenate([np.concatenate([np.full((len(v.coords), 1), b), v.coords], 1)
                        for b, v in enumerate(vox)])
  counts = buckets.count_structure(raw, num_points, num_levels)
  profile = profile or buckets.BucketProfile.from_counts(counts, headroom=headroom, min_voxels=64, align=8)
  caps = profile.plan(counts)
  batch = voxelize.collate(vox, caps.voxels[0], caps.points)
  geom = build(batch, caps, chunk)
  return batch, geom, caps


_build_jit = jax.jit(kernel_map.build_geometry, static_argnums=(4, 5, 6))


def build(batch, caps, chunk):
  return _build_jit(jnp.asarray(batch.coords), jnp.asarray(batch.voxel_valid),
                    jnp.asarray(batch.point2voxel), jnp.asarray(batch.point_valid),
                    caps.voxels, caps.pairs, (chunk,) * len(caps.voxels))

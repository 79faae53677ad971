"""Random sparse scenes and their dense-grid twins, for testing layers against lax convolutions."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ws3d_jax.sparse import buckets, kernel_map, voxelize

DN = ('NDHWC', 'DHWIO', 'NDHWC')


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


def densify(coords, feats, valid, shape):
  """Scatter voxel rows into a (B, X, Y, Z, C) grid (differentiable); padding rows add zeros."""
  grid = jnp.zeros(tuple(shape) + (feats.shape[-1],), feats.dtype)
  return grid.at[tuple(jnp.asarray(coords).T)].add(feats * jnp.asarray(valid)[:, None])


def sample(grid, coords, valid):
  """Reads a dense grid at voxel coordinates; zeros on padding rows."""
  c = jnp.asarray(coords)
  out = grid[c[:, 0], c[:, 1], c[:, 2], c[:, 3]]
  return jnp.where(jnp.asarray(valid)[:, None], out, 0)


def dense_submanifold(grid, weight):
  """weight (27, Cin, Cout) as a 3x3x3 kernel; 'SAME' cross-correlation = sum_d x[i+d] W_d."""
  kernel = weight.reshape(3, 3, 3, weight.shape[1], weight.shape[2])
  return lax.conv_general_dilated(grid, kernel, (1, 1, 1), 'SAME', dimension_numbers=DN,
                                  precision=lax.Precision.HIGHEST)


def dense_strided(grid, weight):
  """weight (8, Cin, Cout), slot = 4*(x&1) + 2*(y&1) + (z&1): out[p] = sum_s x[2p+s] W_s."""
  kernel = weight.reshape(2, 2, 2, weight.shape[1], weight.shape[2])
  return lax.conv_general_dilated(grid, kernel, (2, 2, 2), 'VALID', dimension_numbers=DN,
                                  precision=lax.Precision.HIGHEST)


def dense_transposed(grid, weight):
  """out[2p+s] = x[p] W_s, as an input-dilated convolution with the kernel mirrored."""
  kernel = weight.reshape(2, 2, 2, weight.shape[1], weight.shape[2])[::-1, ::-1, ::-1]
  return lax.conv_general_dilated(grid, kernel, (1, 1, 1), ((1, 1),) * 3, lhs_dilation=(2, 2, 2),
                                  dimension_numbers=DN, precision=lax.Precision.HIGHEST)

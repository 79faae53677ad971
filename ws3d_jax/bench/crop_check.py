"""The benchmark's error check: each layer kind against the dense reference (ws3d_jax.sparse.reference)
on a crop of the benchmark's own scan.

The full scan's grid is far too large to densify (3122 x 2013 x 289 voxels at 5 cm), so the check runs
on the densest aligned block of ``crop`` voxels of the same scan, with the workload's channel count.
"""
from __future__ import annotations

import math

import numpy as np

from ws3d_jax.bench.prepared import Prepared


def densest_block(coords: np.ndarray, block: tuple) -> np.ndarray:
  """Real voxels inside the aligned block of this shape that holds the most of them."""
  b = np.asarray(block)
  cell = coords // b
  uniq, inv, cnt = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
  best = np.argmax(cnt)
  return coords[inv.ravel() == best]


def crop_error(prep: Prepared, channels: int, kinds, crop: tuple, check_grads: bool, chunk: int,
               seed: int = 0) -> dict:
  """Max abs errors of each kind ('pairs', 'dense', 'strided', 'transposed') against the dense
  reference on the densified crop, forward (and gradients if check_grads); chunk: the pair-map
  chunk length of the 'pairs' kind."""
  import jax
  import jax.numpy as jnp

  from ws3d_jax import sparse
  from ws3d_jax.sparse import ops, reference

  block = densest_block(prep.voxel_coords, crop)
  xyz = (block - block.min(axis=0) + 0.5).astype(np.float32)
  coords = np.concatenate([np.zeros((len(block), 1), np.int32), (xyz - 0.5).astype(np.int32)], 1)
  counts = sparse.count_structure(coords, len(xyz), 2)
  profile = sparse.BucketProfile.from_counts(counts, headroom=1.0, min_voxels=64, align=8)
  batch, caps = sparse.prepare_batch([(xyz, np.zeros((len(xyz), 1), np.float32))], 1.0, profile, 2)
  geom = jax.jit(sparse.build_geometry, static_argnums=(4, 5, 6))(
      jnp.asarray(batch.coords), jnp.asarray(batch.voxel_valid), jnp.asarray(batch.point2voxel),
      jnp.asarray(batch.point_valid), caps.voxels, caps.pairs, (chunk, None))
  rng = np.random.default_rng(seed)
  scale = math.sqrt(2.0 / (27 * channels))
  shape = {0: (1,) + tuple(crop), 1: (1,) + tuple(c // 2 for c in crop)}

  def rand(level, c):
    return jnp.asarray(rng.standard_normal((level.coords.shape[0], c)), jnp.float32) * level.valid[:, None]

  # kind -> (input level, output level, kernel slots, sparse op, its dense reference)
  table = {
      'pairs': (0, 0, 27, lambda x, w, gm: ops.submanifold_conv_pairs(x, w, gm.pairs[0]),
                reference.dense_submanifold),
      'dense': (0, 0, 27, lambda x, w, gm: ops.submanifold_conv_dense(x, w, gm.levels[0].nbr),
                reference.dense_submanifold),
      'strided': (0, 1, 8, lambda x, w, gm: ops.strided_conv(x, w, gm.down[0]), reference.dense_strided),
      'transposed': (1, 0, 8, lambda x, w, gm: ops.transposed_conv(x, w, gm.down[0]), reference.dense_transposed),
  }
  result = {'scope': f'crop of the same scan: densest aligned {"x".join(map(str, crop))}-voxel block',
            'crop_voxels': int(len(block)), 'crop_side_pairs': int(counts.pairs[0]), 'channels': channels,
            'reference': 'ws3d_jax.sparse.reference: lax.conv_general_dilated (precision HIGHEST) on the '
                         'densified crop'}
  # Every function takes the geometry as an argument: closed-over arrays would be folded as constants.
  for kind in kinds:
    if kind not in table:
      raise ValueError(kind)
    l_in, l_out, slots, sparse_fn, dense = table[kind]
    lin, lout = geom.levels[l_in], geom.levels[l_out]

    def dense_fn(x, w, gm, dense=dense, l_in=l_in, l_out=l_out):
      grid = reference.densify(gm.levels[l_in].coords, x, gm.levels[l_in].valid, shape[l_in])
      return reference.sample(dense(grid, w), gm.levels[l_out].coords, gm.levels[l_out].valid)

    x = rand(lin, channels)
    w = jnp.asarray(rng.standard_normal((slots, channels, channels)), jnp.float32) * scale
    probe = rand(lout, channels)

    def loss(f, lvl=l_out):
      def fn(x, w, gm, probe):
        out = f(x, w, gm)
        return jnp.sum(out * gm.levels[lvl].valid[:, None] * probe), out
      return fn

    if check_grads:
      (_, out_s), g_s = jax.jit(jax.value_and_grad(loss(sparse_fn), argnums=(0, 1), has_aux=True))(x, w, geom, probe)
      (_, out_d), g_d = jax.jit(jax.value_and_grad(loss(dense_fn), argnums=(0, 1), has_aux=True))(x, w, geom, probe)
    else:
      out_s, out_d = jax.jit(sparse_fn)(x, w, geom), jax.jit(dense_fn)(x, w, geom)
    vout, vin = np.asarray(lout.valid), np.asarray(lin.valid)
    entry = {'max_abs_err_fwd': float(np.abs(np.asarray(out_s) - np.asarray(out_d))[vout].max()),
             'ref_max_abs_fwd': float(np.abs(np.asarray(out_d))[vout].max())}
    if check_grads:
      entry['max_abs_err_grad_x'] = float(np.abs(np.asarray(g_s[0]) - np.asarray(g_d[0]))[vin].max())
      entry['max_abs_err_grad_w'] = float(np.abs(np.asarray(g_s[1]) - np.asarray(g_d[1])).max())
      entry['ref_max_abs_grad_w'] = float(np.abs(np.asarray(g_d[1])).max())
    result[kind] = entry
  return result

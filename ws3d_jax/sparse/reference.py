"""Dense float32 references of the engine's three convolutions, for checking them (tests, benchmark).

Each reference scatters the voxel rows into a dense (B, X, Y, Z, C) grid, runs
``lax.conv_general_dilated`` over the whole grid at HIGHEST precision, and reads the result back
at the output voxels. None of it calls the sparse code (no kernel map, no pair list): it is an
independent statement of what a submanifold, strided or transposed layer computes, in the
engine's weight layouts:

* submanifold 3x3x3: weight (27, Cin, Cout), offset index 9 * (dx+1) + 3 * (dy+1) + (dz+1);
  ``out[i] = sum_d x[i + d] W_d`` over the occupied neighbours (a 'SAME' cross-correlation
  sampled at the occupied voxels, which is why it equals the submanifold rule);
* strided 2x2x2, stride 2: weight (8, Cin, Cout), slot 4 * (x & 1) + 2 * (y & 1) + (z & 1);
  ``out[p] = sum_s x[2p + s] W_s``;
* transposed 2x2x2, stride 2: the same weight layout, ``out[2p + s] = x[p] W_s``.

A dense grid of the full extent costs memory in proportion to its volume: use these on small
scenes or on a crop.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

DN = ('NDHWC', 'DHWIO', 'NDHWC')


def densify(coords, feats, valid, shape):
  """Scatters voxel rows (coords (N, 4) = batch, x, y, z) into a grid of shape + (C,); padding rows add
  zeros. Differentiable in feats."""
  grid = jnp.zeros(tuple(shape) + (feats.shape[-1],), feats.dtype)
  return grid.at[tuple(jnp.asarray(coords).T)].add(feats * jnp.asarray(valid)[:, None])


def sample(grid, coords, valid):
  """Reads a dense grid at voxel coordinates; zeros on padding rows."""
  c = jnp.asarray(coords)
  out = grid[c[:, 0], c[:, 1], c[:, 2], c[:, 3]]
  return jnp.where(jnp.asarray(valid)[:, None], out, 0)


def dense_submanifold(grid, weight):
  """weight (27, Cin, Cout) as a 3x3x3 kernel; 'SAME' cross-correlation = sum_d x[i+d] W_d."""
  return _conv(grid, _kernel(weight, 3), (1, 1, 1), 'SAME')


def dense_strided(grid, weight):
  """weight (8, Cin, Cout), slot = 4*(x&1) + 2*(y&1) + (z&1): out[p] = sum_s x[2p+s] W_s."""
  return _conv(grid, _kernel(weight, 2), (2, 2, 2), 'VALID')


def dense_transposed(grid, weight):
  """out[2p+s] = x[p] W_s, as an input-dilated convolution with the kernel mirrored."""
  kernel = _kernel(weight, 2)[::-1, ::-1, ::-1]
  return _conv(grid, kernel, (1, 1, 1), ((1, 1),) * 3, lhs_dilation=(2, 2, 2))


def _kernel(weight, side: int):
  return weight.reshape(side, side, side, weight.shape[1], weight.shape[2])


def _conv(grid, kernel, strides, padding, **kw):
  # HIGHEST: on a GPU the default would run these float32 references as TF32 / bf16 matmuls.
  return lax.conv_general_dilated(grid, kernel, strides, padding, dimension_numbers=DN,
                                  precision=lax.Precision.HIGHEST, **kw)

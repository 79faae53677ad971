"""Coordinate keys: packing (batch, x, y, z) into sortable keys and looking them up.

JAX runs with 32-bit integers, and a batch of LiDAR scans needs more than 32 bits of key
(16 scenes x 3200 x 3200 x 400 voxels is ~2^36). A key is therefore a pair of uint32 words
compared lexicographically:

    hi = batch << 16 | x        lo = y << 16 | z

so each coordinate may range over [0, 2^16) and the batch index over [0, 2^15). Padding rows
carry the key (PAD, PAD), which sorts after every real key and never equals one (a real ``hi``
is below 2^31).

The host side (numpy, int64) uses the same order through ``host_keys``.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

COORD_BITS = 16
MAX_COORD = (1 << COORD_BITS) - 1  # largest voxel coordinate on one axis
MAX_BATCH = (1 << 15) - 1  # keeps real `hi` words below 2^31, away from PAD
PAD = np.uint32(0xFFFFFFFF)


def host_keys(coords: np.ndarray) -> np.ndarray:
  """int64 keys in the same order as the device (hi, lo) pairs; coords is (N, 4) b,x,y,z."""
  c = coords.astype(np.int64)
  return (((c[:, 0] << COORD_BITS | c[:, 1]) << COORD_BITS | c[:, 2]) << COORD_BITS) | c[:, 3]


def host_unpack(keys: np.ndarray) -> np.ndarray:
  mask = np.int64(MAX_COORD)
  return np.stack([keys >> 48, (keys >> 32) & mask, (keys >> 16) & mask, keys & mask],
                  axis=1).astype(np.int32)


def pack(coords: jnp.ndarray, valid: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(N, 4) int32 coords -> (hi, lo) uint32 keys; rows where ``valid`` is False get PAD."""
  c = coords.astype(jnp.uint32)
  hi = (c[:, 0] << COORD_BITS) | c[:, 1]
  lo = (c[:, 2] << COORD_BITS) | c[:, 3]
  return jnp.where(valid, hi, PAD), jnp.where(valid, lo, PAD)


def lex_less(a_hi, a_lo, b_hi, b_lo):
  return (a_hi < b_hi) | ((a_hi == b_hi) & (a_lo < b_lo))


def searchsorted(sorted_hi, sorted_lo, q_hi, q_lo):
  """Leftmost insertion index of each query into sorted (hi, lo) keys.

  A fixed number of bisection steps keeps the shape static and the loop free of host
  control flow; every step is one gather per word.
  """
  n = sorted_hi.shape[0]
  steps = max(1, int(np.ceil(np.log2(n + 1))))
  left = jnp.zeros(q_hi.shape, jnp.int32)
  right = jnp.full(q_hi.shape, n, jnp.int32)

  def step(_, bounds):
    left, right = bounds
    mid = (left + right) // 2
    probe = jnp.minimum(mid, n - 1)
    go_right = lex_less(sorted_hi[probe], sorted_lo[probe], q_hi, q_lo)
    active = left < right
    left = jnp.where(active & go_right, mid + 1, left)
    right = jnp.where(active & ~go_right, mid, right)
    return left, right

  left, _ = lax.fori_loop(0, steps, step, (left, right))
  return left


def sort_keys(hi, lo, *payload):
  """Sorts keys lexicographically, carrying any payload arrays along."""
  return lax.sort((hi, lo) + tuple(payload), num_keys=2, is_stable=True)

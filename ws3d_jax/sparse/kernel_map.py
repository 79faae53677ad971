"""Kernel maps: which voxel feeds which, built once per stride under jit.

A batch is described by a pyramid of ``Level``s (stride 1, 2, 4, ...). Each level holds its
voxels sorted by key, padded to a static capacity. Three maps are built from the keys:

* ``Level.nbr`` (N, 27): the submanifold 3x3x3 neighbourhood; a missing neighbour points at
  row N, a zero row that the convolution appends to its input.
* ``PairMap``: the same neighbourhood as a list of (input, output) pairs grouped by kernel
  offset and laid out in fixed-size chunks, so that one batched matmul covers every offset
  while only real pairs are computed (LiDAR voxels have ~4 of 26 neighbours).
* ``DownMap``: parent links between a level and the next (2x2x2, stride 2), and the same links
  as (child, parent) pairs grouped by the child's slot in its parent, in chunks like the
  submanifold pairs: the strided convolution reads them child -> parent, the transposed one
  parent -> child, and neither computes the slots where no child exists (an indoor parent has
  about 2-4 of its 8).

Nothing here allocates beyond its static capacity: when a scene needs more, the counts in
``Geometry.needed`` exceed ``Geometry.capacity`` and ``check_capacity`` names the numbers. The
host-side planner (``buckets.py``) computes the same counts beforehand, so in the normal path
an overflow cannot happen.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ws3d_jax.sparse import keys as K

# Offset index d = (dx+1)*9 + (dy+1)*3 + (dz+1), so offset 26-d is the mirror of offset d.
OFFSETS = np.array([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)],
                   np.int32)
CENTER = 13
NUM_OFFSETS = 27
# Non-centre offsets, in the order the pair map stores them.
SIDE_OFFSETS = np.array([d for d in range(NUM_OFFSETS) if d != CENTER], np.int32)


@struct.dataclass
class Level:
  coords: jnp.ndarray  # (N, 4) int32: batch, x, y, z at this level's resolution
  valid: jnp.ndarray  # (N,) bool
  hi: jnp.ndarray  # (N,) uint32, sorted with lo; PAD on padding rows
  lo: jnp.ndarray
  nbr: jnp.ndarray  # (N, 27) int32, N where the neighbour is missing


@struct.dataclass
class PairMap:
  in_idx: jnp.ndarray  # (chunks, chunk) int32 input rows; N_in = zero row
  out_idx: jnp.ndarray  # (chunks, chunk) int32 output rows; N_out = dropped
  offset: jnp.ndarray  # (chunks,) int32 kernel offset index of each chunk

  def reversed(self) -> 'PairMap':
    """The same pairs read the other way (output rows become input rows)."""
    return PairMap(in_idx=self.out_idx, out_idx=self.in_idx, offset=self.offset)


@struct.dataclass
class DownMap:
  parent: jnp.ndarray  # (N_fine,) int32 row of the coarse level; N_coarse for padding rows
  slot: jnp.ndarray  # (N_fine,) int32 position 0..7 of the child inside its parent
  pairs: PairMap  # in: fine rows, out: their parents, offset: the slot
  coarse: int = struct.field(pytree_node=False, default=0)  # N_coarse, the coarse level's capacity


# Chunk length of the down maps' pairs: 512 was fastest for the strided convolution on a room's
# level 0 and 1 (docs/benchmarks.md), at most a sixteenth of the fine level (see down_chunk).
DOWN_CHUNK = 512


def down_chunk(fine_capacity: int) -> int:
  """The down map's chunk for a fine level of this capacity: short enough that the padding of
  the 8 slots (up to a chunk each) stays below half of the level."""
  return int(max(8, min(DOWN_CHUNK, 2 ** int(np.floor(np.log2(max(fine_capacity, 16) / 16))))))


@struct.dataclass
class Geometry:
  levels: tuple  # of Level, stride 1, 2, 4, ...
  pairs: tuple  # of PairMap or None, one per level
  down: tuple  # of DownMap, between level l and l+1
  point2voxel: tuple  # (P,) int32 per level; N_l for padding points
  point_valid: jnp.ndarray  # (P,) bool
  needed: jnp.ndarray  # (2L,) int32: voxels per level, then side pairs per level
  capacity: tuple = struct.field(pytree_node=False, default=())


def level_from_coords(coords: jnp.ndarray, valid: jnp.ndarray) -> Level:
  """Makes a level from voxel coords that are already sorted by key (padding rows last)."""
  hi, lo = K.pack(coords, valid)
  return Level(coords=coords, valid=valid, hi=hi, lo=lo, nbr=submanifold_neighbors(coords, valid, hi, lo))


def submanifold_neighbors(coords, valid, hi, lo) -> jnp.ndarray:
  """(N, 27) neighbour rows. Nine searches per voxel, not 27: the three z-neighbours of an
  (x, y) column are adjacent in key order, so one search for z-1 finds all three within the
  next three rows. All nine columns go through one vectorised search (one loop to compile)."""
  n = coords.shape[0]
  c = coords.astype(jnp.int32)
  b, x, y, z = (c[:, i:i + 1] for i in range(4))  # (N, 1) each
  dxy = OFFSETS[::3, :2]  # the nine (dx, dy) columns in offset order
  qx, qy = x + dxy[:, 0], y + dxy[:, 1]  # (N, 9)
  in_range = valid[:, None] & (qx >= 0) & (qx <= K.MAX_COORD) & (qy >= 0) & (qy <= K.MAX_COORD)
  q_hi = (b.astype(jnp.uint32) << K.COORD_BITS) | qx.astype(jnp.uint32)
  q_y = qy.astype(jnp.uint32) << K.COORD_BITS
  start = K.searchsorted(hi, lo, q_hi.ravel(), (q_y | jnp.maximum(z - 1, 0).astype(jnp.uint32)).ravel())
  cand = jnp.minimum(start.reshape(n, 9, 1) + jnp.arange(3, dtype=jnp.int32), n - 1)  # (N, 9, 3)
  cand_hi, cand_lo = hi[cand], lo[cand]
  tz = z[:, :, None] + jnp.array([-1, 0, 1], jnp.int32)  # (N, 1, 3) targets z-1, z, z+1
  target_lo = q_y[:, :, None] | jnp.clip(tz, 0, K.MAX_COORD).astype(jnp.uint32)  # (N, 9, 3)
  # match[n, col, dz, j]: candidate j holds the neighbour at (col, dz)
  match = ((cand_hi[:, :, None, :] == q_hi[:, :, None, None])
           & (cand_lo[:, :, None, :] == target_lo[..., None]))
  found = match.any(-1) & in_range[..., None] & (tz >= 0) & (tz <= K.MAX_COORD)
  row = jnp.take_along_axis(cand[:, :, None, :], jnp.argmax(match, -1)[..., None], -1)[..., 0]
  return jnp.where(found, row, n).reshape(n, NUM_OFFSETS).astype(jnp.int32)


def build_pairs(nbr: jnp.ndarray, pair_capacity: int, chunk: int) -> tuple[PairMap, jnp.ndarray]:
  """Lays the non-centre pairs of ``nbr`` out as chunks that each hold one kernel offset.
  Returns the map and the number of side pairs."""
  n = nbr.shape[0]
  side = nbr[:, SIDE_OFFSETS]  # (N, 26)
  rows = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32)[:, None], side.shape)
  return _chunk_layout(side < n, side, rows, SIDE_OFFSETS, n, n, pair_capacity, chunk)


def _chunk_layout(present, in_rows, out_rows, offsets, pad_in: int, pad_out: int, pair_capacity: int, chunk: int):
  """Pairs given as (N, K) tables (column k: offset ``offsets[k]``, where ``present``) laid out
  in chunks that each hold one offset.

  Every offset's pairs are padded to a multiple of ``chunk``, so the chunk pool needs at most
  pair_capacity / chunk + K chunks. Within a chunk both index lists ascend (shifting sorted
  keys by a constant keeps them sorted), which makes the gathers cache-friendly.
  Returns the map and the number of pairs.
  """
  counts = present.sum(axis=0)
  chunks_per_offset = (counts + chunk - 1) // chunk
  chunk_end = jnp.cumsum(chunks_per_offset)
  chunk_start = chunk_end - chunks_per_offset
  num_chunks = -(-pair_capacity // chunk) + len(offsets)
  slots = num_chunks * chunk

  rank = jnp.cumsum(present, axis=0) - 1
  slot = jnp.where(present, chunk_start[None, :] * chunk + rank, slots)  # out of range: dropped
  slot = jnp.where(slot < slots, slot, slots).ravel()
  in_idx = jnp.full((slots,), pad_in, jnp.int32).at[slot].set(in_rows.ravel(), mode='drop', unique_indices=True)
  out_idx = jnp.full((slots,), pad_out, jnp.int32).at[slot].set(out_rows.ravel(), mode='drop', unique_indices=True)
  owner = jnp.searchsorted(chunk_end, jnp.arange(num_chunks), side='right')
  offset = jnp.asarray(offsets)[jnp.minimum(owner, len(offsets) - 1)]
  pair_map = PairMap(in_idx=in_idx.reshape(num_chunks, chunk), out_idx=out_idx.reshape(num_chunks, chunk),
                     offset=offset)
  return pair_map, counts.sum()


def downsample(level: Level, capacity: int) -> tuple[Level, DownMap, jnp.ndarray]:
  """The next level (stride x2) and the parent/child links; also returns its voxel count."""
  n = level.coords.shape[0]
  c = level.coords
  parent_coords = jnp.concatenate([c[:, :1], c[:, 1:] >> 1], axis=1)
  p_hi, p_lo = K.pack(parent_coords, level.valid)
  s_hi, s_lo, order = K.sort_keys(p_hi, p_lo, jnp.arange(n, dtype=jnp.int32))
  s_valid = s_hi != K.PAD
  first = jnp.concatenate([jnp.ones((1,), bool), (s_hi[1:] != s_hi[:-1]) | (s_lo[1:] != s_lo[:-1])])
  is_new = first & s_valid
  count = is_new.sum()
  rank = jnp.cumsum(is_new) - 1
  rank = jnp.where(s_valid & (rank < capacity), rank, capacity)
  parent = jnp.full((n,), capacity, jnp.int32).at[order].set(rank.astype(jnp.int32), unique_indices=True)

  starts = jnp.nonzero(is_new, size=capacity, fill_value=0)[0]
  coarse_valid = jnp.arange(capacity) < count
  coarse_coords = jnp.where(coarse_valid[:, None], parent_coords[order[starts]], 0)
  slot = (((c[:, 1] & 1) << 2) | ((c[:, 2] & 1) << 1) | (c[:, 3] & 1)).astype(jnp.int32)
  coarse = level_from_coords(coarse_coords.astype(jnp.int32), coarse_valid)
  present = level.valid[:, None] & (slot[:, None] == jnp.arange(8, dtype=jnp.int32))
  rows = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32)[:, None], (n, 8))
  pairs, _ = _chunk_layout(present, rows, jnp.broadcast_to(parent[:, None], (n, 8)), np.arange(8, dtype=np.int32),
                           n, capacity, n, down_chunk(n))
  return coarse, DownMap(parent=parent, slot=slot, pairs=pairs, coarse=capacity), count


def build_geometry(coords, voxel_valid, point2voxel, point_valid, voxel_capacity: Sequence[int],
                   pair_capacity: Sequence[int], chunk_sizes: Sequence[int] | None = None) -> Geometry:
  """All kernel maps of a batch. ``voxel_capacity[0]`` must equal the padded input size.

  ``chunk_sizes[l]`` enables the pair map of level l (the 'pairs' convolution); None skips it
  for levels that use the 'dense' convolution.
  """
  num_levels = len(voxel_capacity)
  if coords.shape[0] != voxel_capacity[0]:
    raise ValueError(f'coords has {coords.shape[0]} rows but voxel_capacity[0] is {voxel_capacity[0]}')
  levels = [level_from_coords(coords, voxel_valid)]
  downs, voxel_counts = [], [voxel_valid.sum()]
  for cap in voxel_capacity[1:]:
    coarse, down, count = downsample(levels[-1], cap)
    levels.append(coarse)
    downs.append(down)
    voxel_counts.append(count)

  pairs, pair_counts = [], []
  chunk_sizes = chunk_sizes or (None,) * num_levels
  for l, level in enumerate(levels):
    if chunk_sizes[l] is None:
      pairs.append(None)
      pair_counts.append((level.nbr[:, SIDE_OFFSETS] < level.nbr.shape[0]).sum())
    else:
      pm, count = build_pairs(level.nbr, pair_capacity[l], chunk_sizes[l])
      pairs.append(pm)
      pair_counts.append(count)

  p2v = [jnp.where(point_valid, point2voxel, voxel_capacity[0]).astype(jnp.int32)]
  for l, down in enumerate(downs):
    parent = jnp.concatenate([down.parent, jnp.array([voxel_capacity[l + 1]], jnp.int32)])
    p2v.append(parent[p2v[-1]])

  needed = jnp.stack(voxel_counts + pair_counts).astype(jnp.int32)
  capacity = tuple(int(c) for c in voxel_capacity) + tuple(int(c) for c in pair_capacity)
  return Geometry(levels=tuple(levels), pairs=tuple(pairs), down=tuple(downs), point2voxel=tuple(p2v),
                  point_valid=point_valid, needed=needed, capacity=capacity)


def check_capacity(needed, capacity: Sequence[int]) -> None:
  """Host-side check of ``Geometry.needed``; raises naming the first overflowing capacity."""
  needed = np.asarray(jax.device_get(needed)).reshape(-1, len(capacity)).max(axis=0)
  half = len(capacity) // 2
  for i, (need, cap) in enumerate(zip(needed, capacity)):
    if need > cap:
      what = f'voxels at level {i}' if i < half else f'side pairs at level {i - half}'
      raise ValueError(f'capacity overflow: {what} needs {int(need)} but the bucket holds {cap}; '
                       'raise the bucket profile or let the planner size it from the data')

"""Kernel maps built on the host, in the input pipeline: numpy, int64 keys.

``kernel_map.build_geometry`` builds the same maps on the device, inside the jitted step. On a
small CPU that costs about 8% of a WS3D step and a share of every compile, while the input
pipeline has time to spare and already voxelizes, sorts and counts the same voxels. Here the
maps are built once per batch, beside the padding, and handed to the step as arrays: the step
then holds only the convolutions.

Two phases, because the capacities are planned from counts:

* ``pyramid(coords, num_levels)``: every level's voxels (key order), their 3x3x3 neighbours and
  their parents, unpadded. ``Pyramid.counts`` are the ``StructureCounts`` a bucket is planned
  from.
* ``geometry(pyramid, view, caps, chunk_sizes)``: the padded ``kernel_map.Geometry``, equal
  element for element to what ``build_geometry`` computes from the same padded view (the device
  builder stays as the reference in tests and as the path of batches built without maps).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ws3d_jax.sparse import keys as K
from ws3d_jax.sparse.buckets import Capacities, StructureCounts
from ws3d_jax.sparse.kernel_map import (CENTER, NUM_OFFSETS, OFFSETS, SIDE_OFFSETS, DownMap, Geometry, Level, PairMap,
                                        down_chunk)

_COLUMNS = OFFSETS[::3, :2]  # the nine (dx, dy) columns, in offset order: offset = 3 * column + dz + 1


@dataclasses.dataclass(frozen=True)
class PyramidLevel:
  coords: np.ndarray  # (n, 4) int32 b, x, y, z, in key order
  nbr: np.ndarray  # (n, 27) int32 rows of this level, -1 where the neighbour is missing
  parent: np.ndarray | None  # (n,) int32 row of the next level; None at the last level
  slot: np.ndarray | None  # (n,) int32 position 0..7 inside the parent
  side_pairs: int  # neighbour pairs at the 26 non-centre offsets


@dataclasses.dataclass(frozen=True)
class Pyramid:
  levels: tuple  # of PyramidLevel, stride 1, 2, 4, ...

  def counts(self, num_points: int, regions: int = 0, region_pairs: int = 0) -> StructureCounts:
    return StructureCounts(voxels=tuple(len(lv.coords) for lv in self.levels),
                           pairs=tuple(lv.side_pairs for lv in self.levels),
                           points=int(num_points), regions=int(regions), region_pairs=int(region_pairs))


def pyramid(coords: np.ndarray, num_levels: int) -> Pyramid:
  """The levels of a batch's real voxels; ``coords`` (n, 4) b, x, y, z, unique, in key order."""
  coords = np.asarray(coords, np.int64)
  levels = []
  for level in range(num_levels):
    last = level == num_levels - 1
    parent = slot = next_coords = None
    if not last:
      parent_keys = K.host_keys(np.concatenate([coords[:, :1], coords[:, 1:] >> 1], axis=1))
      uniq, parent = np.unique(parent_keys, return_inverse=True)
      next_coords = K.host_unpack(uniq).astype(np.int64)
      slot = _slot(coords)
    nbr = _neighbours(coords)
    levels.append(PyramidLevel(coords=coords.astype(np.int32), nbr=nbr,
                               parent=None if last else parent.astype(np.int32).ravel(),
                               slot=None if last else slot.astype(np.int32),
                               side_pairs=int(np.count_nonzero(nbr >= 0)) - len(nbr)))
    coords = next_coords
  return Pyramid(levels=tuple(levels))


def geometry(pyr: Pyramid, voxel_valid: np.ndarray, point2voxel: np.ndarray, point_valid: np.ndarray,
             caps: Capacities, chunk_sizes: Sequence[int | None]) -> Geometry:
  """The padded maps of one view (its padded ``voxel_valid``, ``point2voxel``, ``point_valid``)
  for the capacities ``caps``: ``chunk_sizes[l]`` lays out level l's pair map, None skips it."""
  counts = pyr.counts(0)
  if len(pyr.levels) != len(caps.voxels) or int(np.sum(voxel_valid)) != counts.voxels[0]:
    raise ValueError(f'the pyramid ({counts.voxels[0]} voxels, {len(pyr.levels)} levels) is not of this view '
                     f'({int(np.sum(voxel_valid))} voxels, {len(caps.voxels)} levels)')
  for what, need, cap in (('voxels', counts.voxels, caps.voxels), ('side pairs', counts.pairs, caps.pairs)):
    for level, (n, c) in enumerate(zip(need, cap)):
      if n > c:
        raise ValueError(f'capacity overflow: {what} at level {level} needs {n} but the bucket holds {c}; '
                         'plan the capacities from this pyramid\'s counts')
  levels, downs, pairs = [], [], []
  for level, lv in enumerate(pyr.levels):
    cap = caps.voxels[level]
    levels.append(_padded_level(lv, cap))
    chunk = chunk_sizes[level] if chunk_sizes else None
    pairs.append(None if chunk is None else _pair_map(levels[-1].nbr, caps.pairs[level], chunk))
    if lv.parent is not None:
      downs.append(_down_map(lv, cap, caps.voxels[level + 1]))
  p2v = [np.where(point_valid, point2voxel, caps.voxels[0]).astype(np.int32)]
  for level, down in enumerate(downs):
    p2v.append(np.append(down.parent, np.int32(caps.voxels[level + 1]))[p2v[-1]])
  return Geometry(levels=tuple(levels), pairs=tuple(pairs), down=tuple(downs), point2voxel=tuple(p2v),
                  point_valid=np.asarray(point_valid, bool), needed=np.array(counts.voxels + counts.pairs, np.int32),
                  capacity=tuple(int(c) for c in caps.voxels) + tuple(int(c) for c in caps.pairs))


def _slot(coords: np.ndarray) -> np.ndarray:
  return ((coords[:, 1] & 1) << 2) | ((coords[:, 2] & 1) << 1) | (coords[:, 3] & 1)


def _neighbours(coords: np.ndarray) -> np.ndarray:
  """(n, 27) rows of the 3x3x3 neighbours, -1 where missing.

  Only the offsets after the centre are searched; the others are their mirrors (j is i's
  neighbour at offset d iff i is j's at 26 - d). One search per (dx, dy) column: the column's
  voxels at z - 1, z, z + 1 are adjacent in key order, within three rows of the search's answer
  for z - 1."""
  n = len(coords)
  nbr = np.full((n, NUM_OFFSETS), -1, np.int32)
  if not n:
    return nbr
  keys = K.host_keys(coords)
  b, x, y, z = coords.T
  rows = np.arange(n, dtype=np.int32)
  for column, (dx, dy) in enumerate(_COLUMNS):
    if (dx, dy) < (0, 0):
      continue
    qx, qy = x + dx, y + dy
    inside = (qx >= 0) & (qx <= K.MAX_COORD) & (qy >= 0) & (qy <= K.MAX_COORD)
    head = K.host_keys(np.stack([b, np.where(inside, qx, 0), np.where(inside, qy, 0), np.zeros_like(z)], axis=1))
    start = np.searchsorted(keys, head | np.maximum(z - 1, 0))
    for k in range(3):
      cand = np.minimum(start + k, n - 1)
      dz = keys[cand] - head - z
      hit = inside & ((keys[cand] >> K.COORD_BITS) == (head >> K.COORD_BITS)) & (np.abs(dz) <= 1)
      if (dx, dy) == (0, 0):
        hit &= dz > 0  # the centre is the row itself, z - 1 the mirror of z + 1
      nbr[rows[hit], 3 * column + 1 + dz[hit]] = cand[hit]
  nbr[:, CENTER] = rows
  for d in range(CENTER + 1, NUM_OFFSETS):
    found = nbr[:, d] >= 0
    nbr[nbr[found, d], NUM_OFFSETS - 1 - d] = rows[found]
  return nbr


def _padded_level(lv: PyramidLevel, cap: int) -> Level:
  n = len(lv.coords)
  coords = np.zeros((cap, 4), np.int32)
  coords[:n] = lv.coords
  valid = np.arange(cap) < n
  c = coords.astype(np.uint32)
  hi = np.where(valid, (c[:, 0] << K.COORD_BITS) | c[:, 1], K.PAD).astype(np.uint32)
  lo = np.where(valid, (c[:, 2] << K.COORD_BITS) | c[:, 3], K.PAD).astype(np.uint32)
  nbr = np.full((cap, NUM_OFFSETS), cap, np.int32)
  nbr[:n] = np.where(lv.nbr >= 0, lv.nbr, cap)
  return Level(coords=coords, valid=valid, hi=hi, lo=lo, nbr=nbr)


def _pair_map(nbr: np.ndarray, pair_capacity: int, chunk: int) -> PairMap:
  """The side pairs grouped by offset (kernel_map.build_pairs)."""
  n = len(nbr)
  side = nbr[:, SIDE_OFFSETS]
  groups = []
  for j in range(len(SIDE_OFFSETS)):
    rows = np.flatnonzero(side[:, j] < n)
    groups.append((side[rows, j], rows))
  return _chunk_layout(groups, SIDE_OFFSETS, n, n, pair_capacity, chunk)


def _chunk_layout(groups, offsets, pad_in: int, pad_out: int, pair_capacity: int, chunk: int) -> PairMap:
  """(input rows, output rows) of each offset laid out in chunks of one offset each, every
  offset padded to whole chunks (kernel_map._chunk_layout)."""
  counts = np.array([len(rows) for rows, _ in groups])
  chunk_end = np.cumsum(-(-counts // chunk))
  chunk_start = chunk_end - (-(-counts // chunk))
  num_chunks = -(-pair_capacity // chunk) + len(offsets)
  in_idx = np.full(num_chunks * chunk, pad_in, np.int32)
  out_idx = np.full(num_chunks * chunk, pad_out, np.int32)
  for (ins, outs), first in zip(groups, chunk_start * chunk):
    in_idx[first:first + len(ins)] = ins
    out_idx[first:first + len(outs)] = outs
  owner = np.searchsorted(chunk_end, np.arange(num_chunks), side='right')
  return PairMap(in_idx=in_idx.reshape(num_chunks, chunk), out_idx=out_idx.reshape(num_chunks, chunk),
                 offset=np.asarray(offsets, np.int32)[np.minimum(owner, len(offsets) - 1)])


def _down_map(lv: PyramidLevel, cap: int, coarse_cap: int) -> DownMap:
  n = len(lv.coords)
  parent = np.full(cap, coarse_cap, np.int32)
  parent[:n] = lv.parent
  slot = np.zeros(cap, np.int32)  # padding rows have coordinates 0, so slot 0, as on the device
  slot[:n] = lv.slot
  children = [np.flatnonzero(lv.slot == s) for s in range(8)]
  pairs = _chunk_layout([(rows, lv.parent[rows]) for rows in children], np.arange(8), cap, coarse_cap, cap,
                        down_chunk(cap))
  return DownMap(parent=parent, slot=slot, pairs=pairs, coarse=coarse_cap)

"""Capacity buckets: static array sizes for batches of varied scenes.

Every array the device sees has a size taken from a geometric ladder (steps of ``growth``,
1.25 by default), so a run compiles once per rung it visits, not once per scene.

All sizes of a batch (voxels at each stride, neighbour pairs at each stride, points) move
together through one scale: a ``BucketProfile`` says how large each size is relative to the
level-0 voxel count, the batch's scale is the largest size-to-profile ratio, and every capacity
is the profile times the rung above that scale. The number of compiled shapes is therefore the
number of rungs, however many sizes there are. A batch shaped unlike the profile is still
correct; it only pads more.

The counts are computed exactly on the host (int64 keys) before the device builds the same
maps, so a capacity can never be too small in the normal path.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ws3d_jax.sparse import keys as K

# Half of the 26 side offsets; the other half are their mirrors and have the same pair counts.
_HALF_OFFSETS = [(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)
                 if (dx, dy, dz) > (0, 0, 0)]


@dataclasses.dataclass(frozen=True)
class Capacities:
  voxels: tuple  # per level (stride 1, 2, 4, ...)
  pairs: tuple  # side (non-centre) submanifold pairs per level
  points: int
  regions: int = 0  # oversegmentation regions, when the batch carries them
  region_pairs: int = 0  # adjacent region pairs


@dataclasses.dataclass(frozen=True)
class StructureCounts:
  voxels: tuple
  pairs: tuple
  points: int
  regions: int = 0
  region_pairs: int = 0

  def merge(self, other: 'StructureCounts') -> 'StructureCounts':
    """Element-wise maximum: one capacity set that holds both (e.g. two views of a batch)."""
    return StructureCounts(voxels=tuple(map(max, self.voxels, other.voxels)),
                           pairs=tuple(map(max, self.pairs, other.pairs)),
                           points=max(self.points, other.points), regions=max(self.regions, other.regions),
                           region_pairs=max(self.region_pairs, other.region_pairs))


def count_structure(coords: np.ndarray, num_points: int, num_levels: int, regions: int = 0,
                    region_pairs: int = 0) -> StructureCounts:
  """Exact voxel and side-pair counts of every level for the real rows of a batch."""
  coords = np.asarray(coords, np.int64)
  voxels, pairs = [], []
  for level in range(num_levels):
    if level:
      coords = np.concatenate([coords[:, :1], coords[:, 1:] >> 1], axis=1)
    keys = np.unique(K.host_keys(coords))
    coords = K.host_unpack(keys).astype(np.int64)
    voxels.append(len(keys))
    pairs.append(2 * sum(_count_neighbours(keys, coords, off) for off in _HALF_OFFSETS))
  return StructureCounts(voxels=tuple(voxels), pairs=tuple(pairs), points=int(num_points), regions=int(regions),
                         region_pairs=int(region_pairs))


def _count_neighbours(keys, coords, offset) -> int:
  shifted = coords[:, 1:] + np.asarray(offset)
  ok = ((shifted >= 0) & (shifted <= K.MAX_COORD)).all(axis=1)
  query = K.host_keys(np.concatenate([coords[ok, :1], shifted[ok]], axis=1))
  pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
  return int((keys[pos] == query).sum())


@dataclasses.dataclass(frozen=True)
class BucketProfile:
  """Sizes relative to the level-0 voxel count."""
  voxel_ratio: tuple  # (1.0, r1, r2, ...)
  pair_ratio: tuple  # side pairs at each level per level-0 voxel
  point_ratio: float  # points per level-0 voxel
  region_ratio: float = 0.0  # regions per level-0 voxel (0: batches carry no regions)
  region_pair_ratio: float = 0.0
  growth: float = 1.25
  min_voxels: int = 256
  align: int = 64

  @property
  def num_levels(self) -> int:
    return len(self.voxel_ratio)

  @classmethod
  def from_counts(cls, counts: StructureCounts, headroom: float = 1.1, **kw) -> 'BucketProfile':
    """A profile fitted to one batch, with headroom for its siblings."""
    n0 = counts.voxels[0]
    voxel_ratio = (1.0,) + tuple(headroom * v / n0 for v in counts.voxels[1:])
    # A floor of half a neighbour per voxel keeps a later, denser batch from exploding the scale.
    pair_ratio = tuple(max(headroom * p / n0, 0.5 * r) for p, r in zip(counts.pairs, voxel_ratio))
    return cls(voxel_ratio=voxel_ratio, pair_ratio=pair_ratio,
               point_ratio=headroom * counts.points / n0, region_ratio=headroom * counts.regions / n0,
               # The same floor for region pairs: a fitting batch of few, isolated regions has none.
               region_pair_ratio=headroom * max(counts.region_pairs, 0.5 * counts.regions) / n0, **kw)

  def scale(self, counts: StructureCounts) -> float:
    """The batch's size in level-0 voxels of this profile: its largest size-to-ratio quotient."""
    if len(counts.voxels) != len(self.voxel_ratio):
      raise ValueError(f'profile has {len(self.voxel_ratio)} levels, batch has {len(counts.voxels)}')
    if (counts.regions and not self.region_ratio) or (counts.region_pairs and not self.region_pair_ratio):
      raise ValueError('the batch carries regions but the bucket profile has no region ratio; '
                       'fit the profile (BucketProfile.from_counts) on a batch with regions')
    return max([counts.voxels[0], counts.points / self.point_ratio]
               + [v / r for v, r in zip(counts.voxels[1:], self.voxel_ratio[1:])]
               + [p / r for p, r in zip(counts.pairs, self.pair_ratio)]
               + [n / r for n, r in ((counts.regions, self.region_ratio),
                                     (counts.region_pairs, self.region_pair_ratio)) if n])

  def plan(self, counts: StructureCounts) -> Capacities:
    scale = max(self.scale(counts), self.min_voxels)
    rung = math.ceil(math.log(scale / self.min_voxels, self.growth) - 1e-9)
    base = self.min_voxels * self.growth ** rung

    def size(ratio, need):
      return max(self._align(base * ratio), self._align(need))  # the max only guards rounding

    return Capacities(voxels=tuple(size(r, v) for r, v in zip(self.voxel_ratio, counts.voxels)),
                      pairs=tuple(size(r, p) for r, p in zip(self.pair_ratio, counts.pairs)),
                      points=size(self.point_ratio, counts.points),
                      regions=size(self.region_ratio, counts.regions) if counts.regions else 0,
                      region_pairs=size(self.region_pair_ratio, counts.region_pairs) if counts.region_pairs else 0)

  def _align(self, x: float) -> int:
    return max(self.align, int(math.ceil(x / self.align)) * self.align)

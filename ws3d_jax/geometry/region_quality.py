"""How well a partition of a scene into regions follows its semantic labels, and the voxel-grid
partition a region method has to beat."""
from __future__ import annotations

import numpy as np


def region_purity(region_id: np.ndarray, labels: np.ndarray, ignore_label: int) -> float:
  """Point-weighted purity: the share of labelled points that carry their region's majority
  label. Ignored points neither vote nor count; a scene without labelled points gives nan."""
  labelled = labels != ignore_label
  region, label = region_id[labelled].astype(np.int64), labels[labelled].astype(np.int64)
  if len(region) == 0:
    return float('nan')
  stride = label.max() + 1
  pair, count = np.unique(region * stride + label, return_counts=True)
  majority = np.zeros(region.max() + 1, np.int64)
  np.maximum.at(majority, pair // stride, count)
  return float(majority.sum() / len(region))


def voxel_partition(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
  """(N,) int32 ids of the occupied voxels of a regular grid, contiguous."""
  cell = np.floor((xyz - xyz.min(axis=0)) / voxel_size).astype(np.int64)
  dims = cell.max(axis=0) + 1
  _, inverse = np.unique(cell[:, 0] + dims[0] * (cell[:, 1] + dims[1] * cell[:, 2]),
                         return_inverse=True)
  return inverse.reshape(-1).astype(np.int32)


def voxel_partition_like(xyz: np.ndarray, num_regions: int, iterations: int = 30
                         ) -> tuple[np.ndarray, float]:
  """The voxel-grid partition with about num_regions occupied voxels: (ids, voxel size).

  The occupied-voxel count falls as the voxel grows (up to grid-alignment wobble), so a
  bisection on the log of the size finds a close count; the closest one seen is kept.
  """
  xyz = np.asarray(xyz, np.float64)
  small, large = 1e-3, float(np.ptp(xyz, axis=0).max()) + 1.0
  best_size, best_gap = large, np.inf
  for _ in range(iterations):
    size = float(np.sqrt(small * large))
    count = int(voxel_partition(xyz, size).max()) + 1
    if abs(count - num_regions) < best_gap:
      best_size, best_gap = size, abs(count - num_regions)
    if count == num_regions:
      break
    small, large = (size, large) if count > num_regions else (small, size)
  return voxel_partition(xyz, best_size), best_size

"""Which regions touch: the region pairs of the energy's pairwise terms."""
from __future__ import annotations

import numpy as np

from ws3d_jax.geometry.knn import Neighbours, directed_edges, knn


def region_adjacency(xyz: np.ndarray, region_id: np.ndarray, k: int = 16,
                     radius: float = 0.1, neighbours: Neighbours | None = None) -> np.ndarray:
  """(E, 2) int32 pairs (i, j), i < j, unique and sorted, of adjacent regions.

  Regions i and j are adjacent when a point of one has one of its k nearest neighbours, no
  farther than `radius` metres, in the other. The radius keeps regions on opposite sides of a
  gap apart (a sparse far-range LiDAR neighbour may be metres away). `neighbours`, a KNN graph
  with at least k columns, saves the search when the caller already has one.
  """
  neighbours = knn(xyz, k) if neighbours is None else neighbours.first(k)
  source, target, _ = directed_edges(neighbours, radius)
  a = np.asarray(region_id, np.int64)[source]
  b = np.asarray(region_id, np.int64)[target]
  crossing = a != b
  # The relation is symmetric even though KNN is not: i in KNN(j) does not imply j in KNN(i),
  # so both directions are folded onto (min, max) before de-duplication.
  low, high = np.minimum(a[crossing], b[crossing]), np.maximum(a[crossing], b[crossing])
  stride = int(max(high.max(initial=0), 0)) + 1
  pairs = np.unique(low * stride + high)
  return np.stack([pairs // stride, pairs % stride], axis=1).astype(np.int32)

"""The k-nearest-neighbour graph that oversegmentation, adjacency and boundaries share."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree


class Neighbours(NamedTuple):
  """k nearest neighbours of every point, itself excluded, nearest first."""
  index: np.ndarray     # (N, k) int32
  distance: np.ndarray  # (N, k) float32

  @property
  def k(self) -> int:
    return self.index.shape[1]

  def first(self, k: int) -> 'Neighbours':
    """The k nearest of these neighbours (k larger than available keeps them all)."""
    return Neighbours(self.index[:, :k], self.distance[:, :k])


def knn(xyz: np.ndarray, k: int) -> Neighbours:
  """k nearest neighbours of each point of (N, 3) `xyz` by a KD-tree.

  Clouds with at most k points get N - 1 neighbours. One worker: the caller decides on
  parallelism across scenes, and timings stay comparable.
  """
  xyz = np.asarray(xyz, np.float32)
  k = int(min(k, len(xyz) - 1))
  if k < 1:
    return Neighbours(np.zeros((len(xyz), 0), np.int32), np.zeros((len(xyz), 0), np.float32))
  distance, index = cKDTree(xyz).query(xyz, k + 1, workers=1)
  # Column 0 is the point itself except among exact duplicates, where a twin may come first;
  # dropping column 0 either way keeps k neighbours and at most a harmless self entry.
  return Neighbours(index[:, 1:].astype(np.int32), distance[:, 1:].astype(np.float32))


def directed_edges(neighbours: Neighbours, radius: float = np.inf
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(source, target, distance) of the neighbour pairs within `radius`, no self pairs."""
  n, k = neighbours.index.shape
  source = np.repeat(np.arange(n, dtype=np.int32), k)
  target = neighbours.index.reshape(-1)
  distance = neighbours.distance.reshape(-1)
  keep = (distance <= radius) & (source != target)
  return source[keep], target[keep], distance[keep]

"""Ground-truth boundary points of a labelled scene: the targets of the boundary network."""
from __future__ import annotations

import numpy as np

from ws3d_jax.geometry.knn import Neighbours, directed_edges, knn


def label_boundaries(xyz: np.ndarray, labels: np.ndarray, ignore_label: int, k: int = 16,
                     radius: float = 0.1, neighbours: Neighbours | None = None) -> np.ndarray:
  """(N,) bool: the point's k nearest neighbours within `radius` hold another semantic label.

  Ignored points are never boundary points and never make a neighbour one: an unannotated
  patch says nothing about where a class ends. `neighbours`, a KNN graph with at least k
  columns, saves the search when the caller already has one.
  """
  labels = np.asarray(labels)
  neighbours = knn(xyz, k) if neighbours is None else neighbours.first(k)
  source, target, _ = directed_edges(neighbours, radius)
  differs = ((labels[source] != labels[target]) & (labels[source] != ignore_label)
             & (labels[target] != ignore_label))
  boundary = np.zeros(len(labels), bool)
  boundary[source[differs]] = True
  return boundary

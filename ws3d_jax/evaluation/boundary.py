"""Boundary-point metrics: exact, and within a distance (the way edge detectors are scored).

The exact score counts a predicted boundary point as right only when that very point is a
ground-truth boundary point. Edge benchmarks (BSDS and the semantic-edge protocols after it) also
match within a tolerance, since a boundary a few centimetres off is still the same boundary:
a predicted point is right when a true boundary point lies within ``tolerance`` of it
(precision), and a true point is found when a predicted one lies within ``tolerance`` (recall).
Both are counted here; which one a figure quotes must be said beside it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial import cKDTree


@dataclasses.dataclass(frozen=True)
class BoundaryCounts:
  """Sums over scenes; add two with ``+``."""
  tp: int = 0  # exact: predicted and true at the same point
  predicted: int = 0
  true: int = 0
  predicted_near_true: int = 0  # predicted points with a true boundary point within the tolerance
  true_near_predicted: int = 0  # true points with a predicted boundary point within the tolerance

  def __add__(self, other: 'BoundaryCounts') -> 'BoundaryCounts':
    return BoundaryCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

  def scores(self) -> dict:
    exact = _f1(self.tp / max(self.predicted, 1), self.tp / max(self.true, 1))
    within = _f1(self.predicted_near_true / max(self.predicted, 1), self.true_near_predicted / max(self.true, 1))
    return {'precision': exact[0], 'recall': exact[1], 'f1': exact[2],
            'precision_within': within[0], 'recall_within': within[1], 'f1_within': within[2]}


def _f1(precision: float, recall: float) -> tuple[float, float, float]:
  return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)


def boundary_counts(xyz: np.ndarray, predicted: np.ndarray, true: np.ndarray, tolerance: float) -> BoundaryCounts:
  """Counts of one scene. ``predicted`` and ``true``: (N,) bool over the points ``xyz`` (N, 3)."""
  predicted, true = np.asarray(predicted, bool), np.asarray(true, bool)
  if not (len(xyz) == len(predicted) == len(true)):
    raise ValueError(f'boundary_counts: {len(xyz)} points, {len(predicted)} predictions, {len(true)} truths')
  return BoundaryCounts(tp=int((predicted & true).sum()), predicted=int(predicted.sum()), true=int(true.sum()),
                        predicted_near_true=_near(xyz[predicted], xyz[true], tolerance),
                        true_near_predicted=_near(xyz[true], xyz[predicted], tolerance))


def _near(points: np.ndarray, targets: np.ndarray, tolerance: float) -> int:
  """How many ``points`` have a ``targets`` point within ``tolerance`` (a point is near itself)."""
  if not len(points) or not len(targets):
    return 0
  distance, _ = cKDTree(targets).query(points, k=1, distance_upper_bound=tolerance)
  return int(np.isfinite(distance).sum())

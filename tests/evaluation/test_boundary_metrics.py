"""Boundary-point precision / recall / F1, exact and within a distance, against hand counts."""
import numpy as np
import pytest

from ws3d_jax.evaluation.boundary import BoundaryCounts, boundary_counts


def line(n: int, spacing: float = 0.05) -> np.ndarray:
  """n points on the x axis, ``spacing`` metres apart."""
  return np.stack([np.arange(n) * spacing, np.zeros(n), np.zeros(n)], axis=1)


def test_a_prediction_one_point_off_is_wrong_exactly_and_right_within_a_point_spacing():
  xyz = line(10)
  true = np.zeros(10, bool)
  true[[4, 5]] = True  # the class changes between points 4 and 5
  predicted = np.zeros(10, bool)
  predicted[[5, 6, 9]] = True  # 5 right; 6 one spacing off; 9 far off
  counts = boundary_counts(xyz, predicted, true, tolerance=0.06)
  assert counts == BoundaryCounts(tp=1, predicted=3, true=2, predicted_near_true=2, true_near_predicted=2)
  s = counts.scores()
  assert s['precision'] == pytest.approx(1 / 3) and s['recall'] == pytest.approx(1 / 2)
  assert s['f1'] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
  assert s['precision_within'] == pytest.approx(2 / 3) and s['recall_within'] == pytest.approx(1.0)
  assert s['f1_within'] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
  # A tolerance below the spacing is the exact score.
  tight = boundary_counts(xyz, predicted, true, tolerance=0.04).scores()
  assert tight['f1_within'] == pytest.approx(s['f1'])


def test_counts_add_over_scenes_and_empty_sides_score_zero():
  xyz = line(4)
  a = boundary_counts(xyz, np.array([1, 0, 0, 0], bool), np.array([1, 0, 0, 0], bool), 0.01)
  b = boundary_counts(xyz, np.zeros(4, bool), np.array([0, 0, 0, 1], bool), 0.01)
  total = a + b
  assert total == BoundaryCounts(tp=1, predicted=1, true=2, predicted_near_true=1, true_near_predicted=1)
  assert total.scores()['recall'] == pytest.approx(0.5) and total.scores()['precision'] == pytest.approx(1.0)
  assert b.scores()['f1'] == 0.0 and b.scores()['f1_within'] == 0.0


def test_mismatched_lengths_name_the_sizes():
  with pytest.raises(ValueError, match='4 points, 3 predictions'):
    boundary_counts(line(4), np.zeros(3, bool), np.zeros(4, bool), 0.1)

"""The boundary network's decision threshold: the F1-maximising cut, checked against brute force."""
import numpy as np

from ws3d_jax.train.boundary_network import f1_threshold


def _f1(pred, truth):
  tp = (pred & truth).sum()
  return 2 * tp / max(pred.sum() + truth.sum(), 1)


def test_f1_threshold_matches_the_best_of_every_cut():
  rng = np.random.default_rng(0)
  for trial in range(20):
    n = int(rng.integers(5, 300))
    truth = rng.random(n) < rng.uniform(0.05, 0.5)
    scores = np.round(rng.normal(truth * rng.uniform(0, 2), 1.0), int(rng.integers(0, 3)))  # with ties
    t = f1_threshold(scores, truth)
    best = max(_f1(scores > c, truth) for c in np.concatenate([np.unique(scores) - 1e-9, [scores.max() + 1]]))
    np.testing.assert_allclose(_f1(scores > t, truth), best, err_msg=str(trial))


def test_f1_threshold_separates_separable_scores():
  scores = np.array([-3.0, -2.0, -1.0, 2.0, 3.0])
  truth = np.array([False, False, False, True, True])
  t = f1_threshold(scores, truth)
  assert -1.0 < t < 2.0

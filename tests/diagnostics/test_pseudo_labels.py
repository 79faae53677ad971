"""Pseudo-label quality counted by hand on a three-region scene."""
import numpy as np

from ws3d_jax.diagnostics import pseudo_labels

IGNORE = 255


def test_confident_regions_are_counted_and_checked_against_the_majority_label():
  region_id = np.array([0, 0, 1, 1, 2, 2])
  labels = np.array([1, 1, 0, 0, IGNORE, IGNORE])  # region 2 has no ground truth
  logits = np.array([[0.0, 9.0], [0.0, 0.0],   # region 0: pooled (0, 9), confident, label 1: right
                     [0.0, 0.3], [0.0, 0.0],   # region 1: pooled (0, 0.3), not confident, says 1: wrong
                     [9.0, 0.0], [0.0, 0.0]])  # region 2: no truth, not counted
  q = pseudo_labels.quality(logits, region_id, labels, num_classes=2, gamma=0.8)
  assert q == {'regions': 2, 'confident': 1, 'confident_correct': 1, 'all_correct': 1}
  s = pseudo_labels.summarize([q, {'regions': 2, 'confident': 1, 'confident_correct': 0, 'all_correct': 0}])
  assert s['coverage'] == 0.5 and s['confident_accuracy'] == 0.5 and s['region_accuracy'] == 0.25

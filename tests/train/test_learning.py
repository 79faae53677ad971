"""The one test of the suite that learns: the smoke config at its own size (not the suite's tiny
network, tests/sizes.py), trained 60 steps with every WS3D term switched on after the warm-up.

A broken objective, gradient or optimiser shows here as a cross-entropy that does not fall or a
model no better than predicting the most frequent class. Measured at 60 steps (docs/testing.md):
cross-entropy 2.71 -> 1.10, val mIoU 0.160 against 0.036 for the always-majority prediction,
accuracy 0.54 against 0.36; the thresholds below leave about half of each margin.
"""
import json

import numpy as np
import pytest

from configs import synthetic
from tests.events import scalars
from ws3d_jax.train import trainer

STEPS = 60


@pytest.mark.slow
def test_the_smoke_config_learns_beyond_the_majority_class(tmp_path):
  config = synthetic.get_config('smoke')
  config.data.data_dir = str(tmp_path / 'tfds')
  config.buckets.pin = True  # one compile of the step; the padding costs little at this size
  config.train.steps, config.train.log_every, config.train.checkpoint_every = STEPS, 2, STEPS
  work = tmp_path / 'run'
  summary = trainer.train_and_evaluate(config, str(work))

  logged = scalars(work / 'tensorboard')
  ce = logged['ce']
  first, last = ce[1], np.mean([ce[s] for s in sorted(ce)[-3:]])
  assert last < 0.7 * first, f'cross-entropy {first:.3f} -> {last:.3f} over {STEPS} steps'
  # After the warm-up the unlabeled terms are on and see confident regions.
  end = max(logged['unlabeled_weight'])
  assert logged['unlabeled_weight'][end] > 0 and logged['contrast_anchors'][end] > 0
  assert logged['energy'][end] > 0

  metrics = json.loads((work / 'eval' / 'metrics.json').read_text())
  confusion = np.asarray(metrics['confusion'], np.float64)
  majority = confusion.sum(1).max() / confusion.sum()  # accuracy of always predicting the commonest class
  # ... whose mIoU is its one IoU (= its frequency) over the classes
  assert summary['miou'] > 2 * majority / len(metrics['iou']), (summary['miou'], majority)
  assert metrics['accuracy'] > majority + 0.08, (metrics['accuracy'], majority)

"""The main job, shrunk (configs/synthetic.py:smoke): every stage on generated rooms.

One workdir is carried through the stages a researcher meets: train (boundary network, WS3D,
evaluation, exports) -> resume -> --mode=eval -> a run that diverges.
"""
import json
import math

import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import synthetic as synthetic_config
from ws3d_jax.train import trainer


def _steps(directory):
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def test_smoke_run_trains_resumes_evaluates_and_stops_on_nan(tmp_path):
  config = synthetic_config.get_config('smoke')
  config.data.data_dir = str(tmp_path / 'tfds')
  work = tmp_path / 'run'
  summary = trainer.train_and_evaluate(config, str(work))

  assert (tmp_path / 'tfds' / 'synthetic').is_dir()  # the embedded default was built as a TFDS data set
  metrics = json.loads((work / 'eval' / 'metrics.json').read_text())
  assert set(metrics['iou']) == set(trainer.sources.label_defs.CLASSES['synthetic'])
  assert 0.0 <= metrics['miou'] <= 1.0 and metrics['points'] > 0 and metrics['miou'] == summary['miou']
  # The mean is over every class, with absent classes counted as 0 (the official protocol).
  ious = [v or 0.0 for v in metrics['iou'].values()]
  assert math.isclose(metrics['miou'], sum(ious) / len(ious))
  assert np.asarray(metrics['confusion']).sum() == metrics['points']
  assert _steps(work / 'checkpoints') == [3, 6] and _steps(work / 'checkpoints_best') == [6]
  assert list((work / 'tensorboard').glob('events.out.tfevents.*'))
  assert len(list((work / 'eval' / 'ply').glob('*.ply'))) == 1
  split = json.loads((work / 'split.json').read_text())
  assert abs(split['achieved_ratio'] - 0.1) < 0.01 and split['cut'] is not None
  manifest = json.loads((work / 'boundary' / 'manifest.json').read_text())
  assert manifest['scenes'] == len(split['unlabeled'])
  boundary_mtime = (work / 'boundary' / 'points.npz').stat().st_mtime_ns

  # A second run in the same workdir resumes at the last step and reuses the boundary points.
  config.train.steps = 8
  trainer.train_and_evaluate(config, str(work))
  assert _steps(work / 'checkpoints')[-1] == 8
  assert (work / 'boundary' / 'points.npz').stat().st_mtime_ns == boundary_mtime
  final = json.loads((work / 'eval' / 'metrics.json').read_text())
  assert final['step'] == 8

  # --mode=eval on the latest checkpoint reproduces the metrics of the end of training.
  config.eval.checkpoint = 'latest'
  (work / 'eval' / 'metrics.json').unlink()
  again = trainer.train_and_evaluate(config, str(work), mode='eval')
  assert again['step'] == 8 and again['confusion'] == final['confusion']

  # A run whose updates go non-finite stops with a message and keeps the last good checkpoint.
  config.optim.lr = float('inf')
  config.train.steps = 10
  with pytest.raises(FloatingPointError, match=r'last good checkpoint \(step 8\)'):
    trainer.train_and_evaluate(config, str(work))
  assert _steps(work / 'checkpoints')[-1] == 8
  restored = ocp.CheckpointManager((work / 'checkpoints').absolute()).restore(8)
  leaves = [np.asarray(x) for x in __import__('jax').tree.leaves(restored['params'])]
  assert all(np.isfinite(x).all() for x in leaves)

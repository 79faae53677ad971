"""The main job, shrunk: train on generated rooms, evaluate, write metrics, checkpoints, events."""
import json

from configs import synthetic as synthetic_config
from ws3d_jax.train import trainer


def test_smoke_run_writes_everything_and_resumes(tmp_path):
  config = synthetic_config.get_config('smoke')
  config.data.data_dir = str(tmp_path / 'tfds')
  summary = trainer.train_and_evaluate(config, str(tmp_path))

  metrics = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
  assert set(metrics['iou']) == set(trainer.label_defs.CLASSES['synthetic'])
  assert (tmp_path / 'tfds' / 'synthetic').is_dir()  # the embedded default was built as a TFDS data set
  assert 0.0 <= metrics['miou'] <= 1.0 and metrics['points'] > 0
  assert metrics['miou'] == summary['miou']
  assert sorted(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit()) == [3, 6]
  assert list((tmp_path / 'tensorboard').glob('events.out.tfevents.*'))

  # A second run in the same workdir resumes at the last step instead of training again.
  config.train.steps = 8
  trainer.train_and_evaluate(config, str(tmp_path))
  assert max(int(p.name) for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit()) == 8

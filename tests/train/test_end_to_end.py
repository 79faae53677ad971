"""The main job, shrunk (configs/synthetic.py:smoke): every stage on generated rooms.

One workdir is carried through the stages a researcher meets: train (boundary network, WS3D,
evaluation, exports) -> resume -> --mode=eval -> a run that diverges.
"""
import json
import logging
import math
import shutil

import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import synthetic as synthetic_config
from tests.sizes import tiny
from ws3d_jax.data import labels as label_defs
from ws3d_jax.data import sources
from ws3d_jax.diagnostics import term_gradients
from ws3d_jax.train import run_builder, trainer

pytestmark = pytest.mark.slow  # the main job end to end, several times over one workdir


def _steps(directory):
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _mesh_clouds(event_dir):
  """{tag: {content type: array}} of the mesh-plugin summaries in a TensorBoard event folder,
  read back the way TensorBoard's mesh plugin reads them (its metadata, its tensors)."""
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.plugins.mesh import metadata as mesh_metadata
  from tensorboard.util import tensor_util
  acc = event_accumulator.EventAccumulator(str(event_dir), size_guidance={event_accumulator.TENSORS: 0})
  acc.Reload()
  clouds = {}
  for tag in acc.Tags()['tensors']:
    meta = acc.SummaryMetadata(tag)
    if meta.plugin_data.plugin_name != mesh_metadata.PLUGIN_NAME:
      continue
    data = mesh_metadata.parse_plugin_metadata(meta.plugin_data.content)
    clouds.setdefault(data.name, {})[data.content_type] = tensor_util.make_ndarray(acc.Tensors(tag)[-1].tensor_proto)
  return clouds


def test_smoke_run_trains_resumes_evaluates_and_stops_on_nan(tmp_path, caplog):
  config = tiny(synthetic_config.get_config('smoke'))
  config.data.data_dir = str(tmp_path / 'tfds')
  work = tmp_path / 'run'
  with caplog.at_level(logging.INFO):
    summary = trainer.train_and_evaluate(config, str(work))

  # The console names each compile before it starts and gives an ETA from the second step on.
  messages = [r.getMessage() for r in caplog.records]
  first_step = next(i for i, m in enumerate(messages) if m.startswith('step 1/6'))
  compiles = [i for i, m in enumerate(messages) if m.startswith('compiling the WS3D train step for a bucket')]
  assert compiles and compiles[0] < first_step
  for what in ("the model initialisation", "the boundary network's train step", 'the whole-scene prediction'):
    assert any(m.startswith(f'compiling {what}') for m in messages), what
  assert 'compile included' in messages[first_step]
  # the first ETA as soon as two steps without a compile between them were read back
  eta_steps = [int(m.split()[1].split('/')[0]) for m in messages if m.startswith('step ') and 'steps/s, ETA' in m]
  assert eta_steps and eta_steps[0] <= 2 + sum(m.startswith('compiling the WS3D train step') for m in messages)
  assert any(m.startswith('boundary network step') and 'steps/s, ETA' in m for m in messages)

  assert (tmp_path / 'tfds' / 'synthetic').is_dir()  # the embedded default was built as a TFDS data set
  metrics = json.loads((work / 'eval' / 'metrics.json').read_text())
  assert set(metrics['iou']) == set(label_defs.CLASSES['synthetic'])
  assert 0.0 <= metrics['miou'] <= 1.0 and metrics['points'] > 0 and metrics['miou'] == summary['miou']
  # The mean is over every class, with absent classes counted as 0 (the official protocol).
  ious = [v or 0.0 for v in metrics['iou'].values()]
  assert math.isclose(metrics['miou'], sum(ious) / len(ious))
  assert np.asarray(metrics['confusion']).sum() == metrics['points']
  assert _steps(work / 'checkpoints') == [3, 6] and _steps(work / 'checkpoints_best') == [6]
  assert list((work / 'tensorboard').glob('events.out.tfevents.*'))
  # Prediction and ground truth of the first evaluation scene as point clouds for the mesh plugin.
  from tensorboard.plugins.mesh import plugin_data_pb2
  vertex, colour = plugin_data_pb2.MeshPluginData.VERTEX, plugin_data_pb2.MeshPluginData.COLOR
  clouds = _mesh_clouds(work / 'tensorboard')
  eval_scenes = sources.load_experiment(run_builder.data_spec(config), work).eval_scenes
  shown = [eval_scenes[i]['scene_id'] for i in range(min(config.eval.tensorboard_scenes, len(eval_scenes)))]
  assert set(clouds) == {f'scenes/{sid}/{k}' for sid in shown for k in ('ground_truth', 'prediction')}
  scene = eval_scenes[0]
  truth = clouds[f'scenes/{scene["scene_id"]}/ground_truth']
  assert truth[vertex].shape == (1, len(scene['xyz']), 3) and truth[colour].dtype == np.uint8
  np.testing.assert_allclose(truth[vertex][0], scene['xyz'], atol=1e-6)
  palette = label_defs.PALETTES['synthetic']
  np.testing.assert_array_equal(truth[colour][0], palette[scene['semantic']])
  assert len(list((work / 'eval' / 'ply').glob('*.ply'))) == 1
  split = json.loads((work / 'split.json').read_text())
  assert abs(split['achieved_ratio'] - 0.1) < 0.01 and split['cut'] is not None
  manifest = json.loads((work / 'boundary' / 'manifest.json').read_text())
  assert manifest['scenes'] == len(split['unlabeled'])
  boundary_mtime = (work / 'boundary' / 'points.npz').stat().st_mtime_ns

  # The same command again: the run is complete, says so, and trains or evaluates nothing.
  caplog.clear()
  with caplog.at_level(logging.INFO):
    again = trainer.train_and_evaluate(config, str(work))
  assert again['miou'] == summary['miou'] and again['step'] == 6
  assert any(r.getMessage().startswith('this run is complete: step 6 of 6') for r in caplog.records)
  assert not any(r.getMessage().startswith(('compiling', 'step ')) for r in caplog.records)

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

  # The per-term gradient report runs with the boundary cache gone, and computes it again.
  shutil.rmtree(work / 'boundary')
  grads = term_gradients.report(config, work, step=8, batches=1)
  assert grads['step'] == 8 and grads['ce']['grad_norm'] > 0 and grads['energy']['grad_norm'] > 0
  assert json.loads((work / 'boundary' / 'manifest.json').read_text())['scenes'] == len(split['unlabeled'])

  # A run whose updates go non-finite stops with a message and keeps the last good checkpoint.
  # (A learning rate changed on resume is refused unless named: train/config_changes.py.)
  config.train.resume_changes = 'optim.lr'
  config.optim.lr = float('inf')
  config.train.steps = 10
  with pytest.raises(FloatingPointError, match=r'last good checkpoint \(step 8, its checksums verified\)'):
    trainer.train_and_evaluate(config, str(work))
  assert _steps(work / 'checkpoints')[-1] == 8
  restored = ocp.CheckpointManager((work / 'checkpoints').absolute()).restore(8)
  leaves = [np.asarray(x) for x in __import__('jax').tree.leaves(restored['params'])]
  assert all(np.isfinite(x).all() for x in leaves)

  # A damaged latest checkpoint (its metadata emptied, as a crash mid-write on some file systems
  # leaves it) is set aside, said so, and the run resumes from the one before it.
  config.optim.lr = synthetic_config.get_config('smoke').optim.lr
  config.train.steps = 9
  (work / 'checkpoints' / '8' / 'default' / '_METADATA').write_text('')
  caplog.clear()
  with caplog.at_level(logging.INFO):
    trainer.train_and_evaluate(config, str(work))
  messages = [r.getMessage() for r in caplog.records]
  assert any(m.startswith(f'the checkpoint of step 8 in {work / "checkpoints"} cannot be read') for m in messages)
  assert 'resumed from the checkpoint of step 6 in' in '\n'.join(messages)
  assert (work / 'checkpoints_damaged' / '8').is_dir() and _steps(work / 'checkpoints')[-1] == 9


def test_a_diverging_run_is_marked_on_the_console_and_in_its_metrics(tmp_path, caplog):
  # optim.lr=1e4 once trained to exit 0 with losses of 6e8 and nothing said.
  config = tiny(synthetic_config.get_config('smoke,sup_only'))
  config.data.data_dir = str(tmp_path / 'tfds')
  config.optim.lr, config.train.log_every = 1e4, 1
  with caplog.at_level(logging.INFO):
    summary = trainer.train_and_evaluate(config, str(tmp_path / 'run'))
  messages = [r.getMessage() for r in caplog.records]
  assert summary['diverged_at_step'] is not None
  assert json.loads((tmp_path / 'run' / 'eval' / 'metrics.json').read_text())['diverged_at_step'] == \
      summary['diverged_at_step']
  assert any('the run is diverging' in m for m in messages)
  assert any(m.startswith('evaluation at step 6') and 'DIVERGED' in m for m in messages)


def test_checkpoints_by_wall_time_and_a_fresh_start_said(tmp_path, caplog):
  # checkpoint_every beyond the run: only the wall-time rule (and the last step) save.
  config = tiny(synthetic_config.get_config('smoke,sup_only'))
  config.data.data_dir = str(tmp_path / 'tfds')
  config.train.steps, config.train.log_every, config.train.checkpoint_every = 6, 1, 1000
  config.train.checkpoint_minutes = 1e-6
  with caplog.at_level(logging.INFO):
    trainer.train_and_evaluate(config, str(tmp_path / 'run'))
  assert any(m.getMessage().startswith('no checkpoint yet in ') and m.getMessage().endswith('starting at step 1')
             for m in caplog.records)
  steps = sorted(int(p.stem) for p in (tmp_path / 'run' / 'checkpoints_checksums').glob('*.json'))
  assert steps[-1] == 6 and len(steps) >= 2  # a save at a logged step before the end

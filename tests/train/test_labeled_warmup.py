"""train.labeled_warmup: a WS3D run whose first loss.warmup of the steps are a sup_only run's.

The reference is the label-efficiency benchmark's way of running WS3D: a sup_only run of the same
split, then a WS3D run that starts from its checkpoint at the warm-up step (train.init_from). One
run with train.labeled_warmup must end where that pair ends, bit for bit.
"""
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import synthetic
from tests.sizes import tiny
from ws3d_jax.train import trainer

pytestmark = pytest.mark.slow  # three short training runs


def _config(tokens: str, data_dir: str):
  config = tiny(synthetic.get_config(tokens))
  config.data.data_dir = data_dir
  config.train.steps, config.train.checkpoint_every, config.train.keep_checkpoints = 10, 1, 10
  config.train.batch_size = 2  # sup_only keeps WS3D's batch size: the same epochs, the same schedule
  config.loss.gamma = 0.05  # untrained tiny models are never confident at 0.8: keep the unlabeled terms active
  return config


def _final_state(workdir):
  manager = ocp.CheckpointManager((workdir / 'checkpoints').absolute(), item_handlers=ocp.StandardCheckpointHandler())
  return manager.restore(manager.latest_step()), manager.all_steps()


def test_a_labeled_warmup_run_ends_where_sup_only_then_ws3d_from_its_checkpoint_ends(tmp_path):
  data_dir = str(tmp_path / 'tfds')
  one = _config('smoke', data_dir)
  one.train.labeled_warmup = True
  summary = trainer.train_and_evaluate(one, str(tmp_path / 'one'))

  sup = _config('smoke,sup_only', data_dir)
  trainer.train_and_evaluate(sup, str(tmp_path / 'sup'))
  pair = _config('smoke', data_dir)
  pair.train.init_from, pair.train.init_step = str(tmp_path / 'sup'), 3  # warmup 0.3 x 10 steps
  reference = trainer.train_and_evaluate(pair, str(tmp_path / 'pair'))

  a, steps_a = _final_state(tmp_path / 'one')
  b, _ = _final_state(tmp_path / 'pair')
  for key in ('params', 'batch_stats', 'opt_state', 'step'):
    for x, y in zip(jax.tree.leaves(a[key]), jax.tree.leaves(b[key]), strict=True):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=key)
  assert summary['miou'] == reference['miou']
  # The warm-up's own steps were checkpointed as the run's: a run stopped in it resumes there.
  assert {1, 2, 3} <= set(steps_a)


def test_without_unlabeled_scenes_there_is_no_warmup_phase(tmp_path):
  from ws3d_jax.data import sources
  from ws3d_jax.train import run_builder
  config = _config('smoke,sup_only', str(tmp_path / 'tfds'))
  config.train.labeled_warmup = True
  data = sources.load_experiment(run_builder.data_spec(config), tmp_path / 'w')
  assert run_builder.build(config, data).warmup is None
  ws3d = _config('smoke', str(tmp_path / 'tfds'))
  ws3d.train.labeled_warmup = True
  run = run_builder.build(ws3d, data)
  assert run.warmup.steps == 3 and run.warmup.objective.w_energy == 0 and run.warmup.objective.w_contrast == 0
  assert run.objective.w_energy > 0

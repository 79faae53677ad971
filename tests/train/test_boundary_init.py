"""The boundary network initialised from another run's backbone (boundary.init_from): what has the
same name and shape is taken, the one-logit classifier keeps its initialisation."""
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from ws3d_jax.train import steps
from ws3d_jax.train.boundary_network import from_main_backbone


def _boundary_state():
  params = {'BasicBlock_0': {'kernel': np.zeros((3, 4), np.float32)}, 'Dense_0': {'kernel': np.zeros((4, 1), np.float32)}}
  stats = {'MaskedBatchNorm_0': {'mean': np.zeros(4, np.float32)}}
  return steps.TrainState.create(apply_fn=None, params=params, tx=optax.adam(1e-3), batch_stats=stats)


def _main_checkpoint(tmp_path, step=7):
  main = {'params': {'backbone': {'BasicBlock_0': {'kernel': np.full((3, 4), 2.0, np.float32)},
                                  'Dense_0': {'kernel': np.full((4, 10), 3.0, np.float32)}},  # 10 classes
                     'head_stage0': {'Dense_0': {'kernel': np.ones((4, 8), np.float32)}}},
          'batch_stats': {'backbone': {'MaskedBatchNorm_0': {'mean': np.full(4, 5.0, np.float32)}}},
          'step': np.asarray(step, np.int32)}
  manager = ocp.CheckpointManager((tmp_path / 'checkpoints').absolute())
  manager.save(step, args=ocp.args.StandardSave(main))
  manager.wait_until_finished()


def test_the_backbone_is_taken_and_the_classifier_kept(tmp_path):
  _main_checkpoint(tmp_path)
  state = from_main_backbone(_boundary_state(), str(tmp_path), 0)
  np.testing.assert_array_equal(state.params['BasicBlock_0']['kernel'], np.full((3, 4), 2.0))
  np.testing.assert_array_equal(state.params['Dense_0']['kernel'], np.zeros((4, 1)))  # 1 logit, not 10: kept
  np.testing.assert_array_equal(state.batch_stats['MaskedBatchNorm_0']['mean'], np.full(4, 5.0))


def test_a_missing_step_or_an_unrelated_network_is_an_error(tmp_path):
  _main_checkpoint(tmp_path)
  with pytest.raises(FileNotFoundError, match='no checkpoint of step 3'):
    from_main_backbone(_boundary_state(), str(tmp_path), 3)
  other = steps.TrainState.create(apply_fn=None, params={'Conv_9': {'kernel': np.zeros(2, np.float32)}},
                                  tx=optax.adam(1e-3), batch_stats={})
  with pytest.raises(ValueError, match='no backbone layer'):
    from_main_backbone(other, str(tmp_path), 7)

"""train.init_from across models that differ only by contrast projection heads (Table 5's
last_stage case starts from a sup_only checkpoint that has a head at every stage)."""
import jax.numpy as jnp
import numpy as np
import pytest

from ws3d_jax.train import checkpoints


def _state(heads=(0, 4), backbone=True):
  params = {f'head_stage{k}': {'w': jnp.full((3, 2), float(k + 1))} for k in heads}
  if backbone:
    params['backbone'] = {'kernel': jnp.arange(6.0).reshape(2, 3)}
  return {'step': jnp.int32(7), 'params': params, 'opt_state': {'mu': params}}


def _saved(tmp_path):
  ckpt = checkpoints.Checkpoints(tmp_path, keep=2, metric='miou')
  ckpt.save(7, _state(heads=(0, 1, 2, 3, 4)))
  ckpt.latest.wait_until_finished()
  return str(tmp_path)


def test_heads_this_model_has_not_are_left_behind(tmp_path):
  restored, step = checkpoints.init_from_run(_saved(tmp_path), 7, _state(heads=(4,)))
  assert step == 7 and sorted(restored['params']) == ['backbone', 'head_stage4']
  np.testing.assert_array_equal(restored['params']['head_stage4']['w'], np.full((3, 2), 5.0))
  np.testing.assert_array_equal(restored['opt_state']['mu']['backbone']['kernel'], np.arange(6.0).reshape(2, 3))
  assert int(restored['step']) == 7


def test_any_other_difference_is_still_refused(tmp_path):
  with pytest.raises(checkpoints.CheckpointDoesNotFit, match='backbone/kernel'):
    checkpoints.init_from_run(_saved(tmp_path), 7, _state(heads=(4,), backbone=False))
  with pytest.raises(checkpoints.CheckpointDoesNotFit, match='head_stage5'):
    checkpoints.init_from_run(str(tmp_path), 7, _state(heads=(4, 5)))

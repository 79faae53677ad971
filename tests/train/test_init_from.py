"""train.init_from across models that differ only by contrast projection heads (Table 5's
last_stage case starts from a sup_only checkpoint that has a head at every stage)."""
import jax
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


# --- the optimizer's moments, one vector (optax.flatten) against what checkpoints hold -------------

def _adam_state(tmp_path, heads, flat: bool, save: bool):
  """A TrainState after one Adam update with fixed gradients (checkpointed at step 1 if ``save``)."""
  import optax
  from flax.training import train_state
  params = _state(heads=heads)['params']
  tx = optax.adam(1e-2)
  state = train_state.TrainState.create(apply_fn=None, params=params, tx=optax.flatten(tx) if flat else tx)
  grads = jax.tree.map(lambda p: jnp.cos(p) + 0.5, params)
  state = state.apply_gradients(grads=grads)
  if save:
    ckpt = checkpoints.Checkpoints(tmp_path, keep=2, metric='miou')
    ckpt.save(1, state)
    ckpt.latest.wait_until_finished()
  return state


@pytest.mark.parametrize('saved_flat', [False, True])
def test_moments_in_one_vector_are_read_from_leafwise_and_from_longer_checkpoints(tmp_path, saved_flat):
  """The reference is the flat optimizer itself, run on the same gradients: what it holds after
  one update is what a checkpoint of the leaf-by-leaf optimizer (older runs), or of a flat one
  over more heads (the sup_only warm-up for Table 5's last_stage), must restore to."""
  _adam_state(tmp_path, heads=(0, 1, 4), flat=saved_flat, save=True)
  for heads in ((0, 1, 4), (4,)):
    reference = _adam_state(tmp_path, heads=heads, flat=True, save=False)
    template = jax.tree.map(jnp.zeros_like, reference)
    if heads == (0, 1, 4):
      restored, step = checkpoints.Checkpoints(tmp_path, keep=2, metric='miou').resume(template)
    else:
      restored, step = checkpoints.init_from_run(str(tmp_path), 1, template)
    assert step == 1
    for want, got in zip(jax.tree.leaves(reference), jax.tree.leaves(restored)):
      np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_a_vector_of_another_parameter_layout_is_refused(tmp_path):
  _adam_state(tmp_path, heads=(0, 4), flat=False, save=True)
  other = _adam_state(tmp_path / 'other', heads=(0, 4), flat=True, save=False)
  other = other.replace(params={**other.params, 'backbone': {'kernel': jnp.zeros((3, 3))}})
  with pytest.raises(checkpoints.CheckpointDoesNotFit, match='backbone/kernel'):
    checkpoints.init_from_run(str(tmp_path), 1, other)

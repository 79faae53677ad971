"""A run's checkpoints without a network: what resume and restore return, the step they say, the
keep limit, the best one, and a damaged newest one set aside (orbax writes real checkpoints of a
small state; the fast tier's check of what tests/train/test_end_to_end.py checks on a real run)."""
import numpy as np
import pytest

from ws3d_jax.train.checkpoints import Checkpoints


def _state(step: int) -> dict:
  return {'params': {'w': np.full((3, 2), float(step), np.float32)}, 'step': np.asarray(step, np.int32)}


def _assert_state(restored, step: int) -> None:
  np.testing.assert_array_equal(np.asarray(restored['params']['w']), _state(step)['params']['w'])
  assert int(np.asarray(restored['step'])) == step


def test_resume_returns_the_newest_state_and_its_step(tmp_path):
  checkpoints = Checkpoints(tmp_path, keep=2, metric='miou')
  fresh, step = checkpoints.resume(_state(0))
  assert step == 0 and fresh['params']['w'].sum() == 0  # nothing saved yet: the state it was given
  for step in (2, 4, 6):
    checkpoints.save(step, _state(step))
  checkpoints.wait_until_finished()
  assert sorted(checkpoints.latest.all_steps()) == [4, 6]  # keep=2
  restored, step = checkpoints.resume(_state(0))
  assert step == 6
  _assert_state(restored, 6)


def test_restore_best_latest_or_a_step(tmp_path):
  checkpoints = Checkpoints(tmp_path, keep=3, metric='miou')
  for step, miou in ((2, 0.3), (4, 0.5), (6, 0.4)):
    checkpoints.save(step, _state(step))
    checkpoints.save_best(step, _state(step), miou)
  checkpoints.wait_until_finished()
  for which, expected in (('best', 4), ('latest', 6), ('2', 2)):
    restored, step = checkpoints.restore_for_eval(which, _state(0))
    assert step == expected, which
    _assert_state(restored, expected)


def test_a_damaged_newest_checkpoint_is_set_aside_and_the_one_before_resumed(tmp_path):
  checkpoints = Checkpoints(tmp_path, keep=3, metric='miou')
  for step in (2, 4):
    checkpoints.save(step, _state(step))
  checkpoints.wait_until_finished()
  (tmp_path / 'checkpoints' / '4' / 'default' / '_METADATA').write_text('')
  restored, step = Checkpoints(tmp_path, keep=3, metric='miou').resume(_state(0))
  assert step == 2
  _assert_state(restored, 2)
  assert (tmp_path / 'checkpoints_damaged' / '4').is_dir()
  with pytest.raises(ValueError, match='cannot be read'):
    Checkpoints(tmp_path, keep=3, metric='miou').restore_for_eval('4', _state(0))

"""A run's checkpoints without a network: what resume and restore return, the step they say, the
keep limit, the best one, and a damaged newest one set aside (orbax writes real checkpoints of a
small state; the fast tier's check of what tests/train/test_end_to_end.py checks on a real run)."""
import numpy as np
import pytest

from ws3d_jax.train.checkpoints import CheckpointDoesNotFit, Checkpoints


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


def _large_state(step: int) -> dict:
  """Arrays large enough that orbax's data file is mostly their values."""
  rng = np.random.default_rng(step)
  return {'params': {'w': rng.normal(size=(128, 256)).astype(np.float32)}, 'step': np.asarray(step, np.int32)}


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_bytes_in_a_checkpoint_are_damage_not_a_good_state(tmp_path, seed):
  # 256 random bytes at a random offset of the checkpoint's largest data file, its size
  # unchanged: orbax itself reads such a file back without complaint (thousands of changed
  # values); the checksums written with it make it damage, set aside, and the one before it used.
  checkpoints = Checkpoints(tmp_path, keep=3, metric='miou')
  for step in (2, 4):
    checkpoints.save(step, _large_state(step))
  checkpoints.wait_until_finished()
  data_files = [p for p in (tmp_path / 'checkpoints' / '4').rglob('*') if p.is_file()]
  target = max(data_files, key=lambda p: p.stat().st_size)
  rng = np.random.default_rng(seed)
  data = bytearray(target.read_bytes())
  offset = int(rng.integers(0, len(data) - 256))
  data[offset:offset + 256] = rng.integers(0, 256, 256, dtype=np.uint8).tobytes()
  target.write_bytes(bytes(data))

  restored, step = Checkpoints(tmp_path, keep=3, metric='miou').resume(_large_state(0))
  assert step == 2
  np.testing.assert_array_equal(restored['params']['w'], _large_state(2)['params']['w'])
  assert (tmp_path / 'checkpoints_damaged' / '4').is_dir()
  assert (tmp_path / 'checkpoints_damaged' / '4.checksums.json').is_file()


def test_a_checkpoint_of_another_model_is_named_and_left_in_place(tmp_path):
  checkpoints = Checkpoints(tmp_path, keep=3, metric='miou')
  checkpoints.save(2, _state(2))
  checkpoints.wait_until_finished()
  wider = {'params': {'w': np.zeros((3, 4), np.float32)}, 'step': np.asarray(0, np.int32)}
  with pytest.raises(CheckpointDoesNotFit, match=r'params/w: \(3, 2\) in the checkpoint, \(3, 4\) here'):
    Checkpoints(tmp_path, keep=3, metric='miou').resume(wider)
  assert (tmp_path / 'checkpoints' / '2').is_dir() and not (tmp_path / 'checkpoints_damaged').exists()
  with pytest.raises(CheckpointDoesNotFit):
    Checkpoints(tmp_path, keep=3, metric='miou').restore_for_eval('latest', wider)


def test_a_checkpoint_without_checksums_loads_and_is_marked_unverified(tmp_path):
  checkpoints = Checkpoints(tmp_path, keep=3, metric='miou')
  checkpoints.save(2, _state(2))
  checkpoints.wait_until_finished()
  for record in (tmp_path / 'checkpoints_checksums').glob('*.json'):
    record.unlink()  # as a checkpoint written before checksums existed
  again = Checkpoints(tmp_path, keep=3, metric='miou')
  restored, step = again.resume(_state(0))
  _assert_state(restored, 2)
  assert again.unverified == {2}


def test_checksum_records_follow_the_keep_limit(tmp_path):
  checkpoints = Checkpoints(tmp_path, keep=2, metric='miou')
  for step in (2, 4, 6, 8):
    checkpoints.save(step, _state(step))
  checkpoints.wait_until_finished()
  records = sorted(int(p.stem) for p in (tmp_path / 'checkpoints_checksums').glob('*.json'))
  # Orbax deletes the oldest when a save finishes; the record of the one it replaced then goes
  # with the next save. Never lost: the record of a save still in flight.
  assert records[-2:] == [6, 8] and set(records) <= {4, 6, 8}


def test_a_restore_into_another_dtype_is_not_damage(tmp_path):
  # orbax casts to the dtype of the state it restores into: the trainer's fresh state holds its
  # step as int64, the saved one as int32. The same values: verified, not set aside.
  checkpoints = Checkpoints(tmp_path, keep=3, metric='miou')
  checkpoints.save(2, _state(2))
  checkpoints.wait_until_finished()
  target = {'params': {'w': np.zeros((3, 2), np.float32)}, 'step': np.asarray(0, np.int64)}
  again = Checkpoints(tmp_path, keep=3, metric='miou')
  restored, step = again.resume(target)
  assert step == 2 and int(restored['step']) == 2 and again.unverified == set()
  assert not (tmp_path / 'checkpoints_damaged').exists()


def test_a_write_completing_after_its_save_closed_the_loop_is_dropped_without_a_traceback(monkeypatch):
  """What a failed save leaves behind: tensorstore completes a write after orbax closed the loop
  that awaited it. The stock loop raises there and tensorstore hands the error to
  sys.unraisablehook (a traceback on stderr); ours drops it and still runs what is handed to it
  while open."""
  import asyncio
  import sys
  import time

  import tensorstore as ts

  from ws3d_jax.train.checkpoints import _LateCompletionsDroppedLoop
  for loop_class, raises in ((asyncio.SelectorEventLoop, True), (_LateCompletionsDroppedLoop, False)):
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    loop = loop_class()
    promise, future = ts.Promise.new()
    ran = []

    async def await_a_write():
      asyncio.ensure_future(future)  # registers a completion callback into this loop
      loop.call_soon_threadsafe(ran.append, 1)
      await asyncio.sleep(0)

    loop.run_until_complete(await_a_write())
    loop.close()
    promise.set_result(None)
    time.sleep(0.2)  # in case tensorstore runs the completion on its own thread
    assert ran == [1]
    closed = [u for u in unraisable if 'Event loop is closed' in str(u.exc_value)]
    assert bool(closed) == raises, (loop_class, unraisable)

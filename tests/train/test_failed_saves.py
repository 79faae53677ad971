"""A checkpoint save that fails mid-run (a full disk, a folder made read-only) stops a real
launch.py run within seconds, in two lines that name the folder, the cause and the free space,
and the last complete checkpoint stays intact and verified.

The workdir is a small tmpfs mounted for the test (root only: the test skips elsewhere, saying
so): a disk that is really full, a folder that is really read-only."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO
from tests.sizes import TINY_FLAGS
from ws3d_jax.train.checkpoints import Checkpoints

pytestmark = pytest.mark.slow  # launch.py runs


@pytest.fixture
def small_disk(tmp_path):
  mount = tmp_path / 'disk'
  mount.mkdir()
  made = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', str(mount)], capture_output=True, text=True)
  if made.returncode != 0:
    pytest.skip(f'cannot mount a tmpfs here (needs root): {made.stderr.strip()}')
  yield mount
  subprocess.run(['umount', '-l', str(mount)], check=False)


def _fill(folder):
  """Writes one file until the disk refuses (ENOSPC)."""
  chunk = b'\0' * 2**20
  with open(folder / 'filler', 'wb') as f:
    try:
      while True:
        f.write(chunk)
        f.flush()
    except OSError:
      pass


@pytest.mark.parametrize('fault', ['full', 'read_only'])
def test_a_failed_save_stops_the_run_in_two_lines_and_keeps_the_last_checkpoint(tmp_path, small_disk, fault):
  workdir = small_disk / 'run'
  proc = subprocess.Popen(
      [sys.executable, 'launch.py', '--config=configs/synthetic.py:smoke,sup_only', f'--workdir={workdir}',
       f'--config.data.data_dir={tmp_path / "tfds"}', '--config.train.steps=400', '--config.train.log_every=1',
       '--config.train.checkpoint_every=2', *TINY_FLAGS],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))
  deadline = time.time() + 600
  while not (workdir / 'checkpoints' / '4').is_dir():
    assert proc.poll() is None and time.time() < deadline, 'the run ended or hung before its checkpoint of step 4'
    time.sleep(0.05)
  if fault == 'full':
    _fill(small_disk)
  else:  # the checkpoints folder turned read-only under the run (a read-only bind mount over it)
    for args in (['--bind'], ['-o', 'remount,bind,ro']):
      subprocess.run(['mount', *args, str(workdir / 'checkpoints'), str(workdir / 'checkpoints')], check=True)
  faulted = time.time()
  try:
    lines = proc.communicate(timeout=120)[0].splitlines()
  except subprocess.TimeoutExpired:
    proc.send_signal(signal.SIGKILL)
    pytest.fail('the run did not stop within 120 s of the fault')
  seconds = time.time() - faulted
  assert proc.returncode == 1, lines[-10:]
  assert seconds < 30
  # The console after the fault: the error in two lines, nothing of orbax's, no traceback.
  said = [ln for ln in lines if not ln.startswith('I')]  # absl INFO lines are the run's own progress
  assert len(said) <= 3, said
  why = 'the disk is full' if fault == 'full' else 'the folder cannot be written'
  assert said[-2].startswith('error: CheckpointSaveFailed: saving the checkpoint of step ') and why in said[-2]
  assert f'{workdir / "checkpoints"}' in said[-2] and 'MB free of' in said[-2], said[-2]
  assert said[-1].startswith('(rerun with --verbose')
  if fault == 'read_only':
    subprocess.run(['umount', str(workdir / 'checkpoints')], check=True)
  else:
    (small_disk / 'filler').unlink()
  # The last complete checkpoint is intact: it restores, and its checksums hold.
  checkpoints = Checkpoints(workdir, keep=2, metric='miou')
  step = checkpoints.latest_step()
  assert step is not None and step >= 4
  restored = checkpoints.latest.restore(step)
  assert np.isfinite(np.asarray(restored['step'])).all()
  from ws3d_jax.train import checksums
  assert checksums.verify(workdir / 'checkpoints', step, restored)

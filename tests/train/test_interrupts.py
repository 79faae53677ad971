"""Ctrl-C and SIGTERM (what SLURM sends before pre-emption) to a real launch.py: the run stops at
the next step with a checkpoint of that step, says in one line how to resume, exits 130 / 143
within seconds, and the resumed run ends bit for bit as a run never interrupted."""
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.conftest import REPO
from tests.sizes import TINY_FLAGS

pytestmark = pytest.mark.slow  # three runs of launch.py

STEPS = 120


def _command(data_dir, workdir):
  return [sys.executable, 'launch.py', '--config=configs/synthetic.py:smoke,sup_only', f'--workdir={workdir}',
          f'--config.data.data_dir={data_dir}', f'--config.train.steps={STEPS}', '--config.train.log_every=1',
          '--config.train.checkpoint_every=1000', *TINY_FLAGS]


def _start(data_dir, workdir):
  return subprocess.Popen(_command(data_dir, workdir), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))


def _interrupt_at(proc, line_start: str, *signals):
  """Reads the run's console until a line starts with ``line_start``, then sends ``signals``;
  (seconds from the first signal to the exit, the console lines after it)."""
  for line in proc.stdout:
    if line.startswith(line_start) or re.match(r'I\d{4} .*\] ' + re.escape(line_start), line):
      break
  else:
    pytest.fail(f'the run ended before "{line_start}" (exit {proc.wait()})')
  sent = time.time()
  for s in signals:
    proc.send_signal(s)
  rest = proc.stdout.read().splitlines()
  proc.wait()
  return time.time() - sent, rest


def _state(workdir, step):
  return ocp.CheckpointManager((workdir / 'checkpoints').absolute()).restore(step)


def _steps(workdir):
  return sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())


def test_ctrl_c_stops_with_a_checkpoint_and_the_resume_equals_a_run_never_interrupted(tmp_path):
  data_dir = tmp_path / 'tfds'
  whole = subprocess.run(_command(data_dir, tmp_path / 'whole'), cwd=REPO, capture_output=True, text=True)
  assert whole.returncode == 0, whole.stderr[-2000:]

  interrupted = tmp_path / 'interrupted'
  proc = _start(data_dir, interrupted)
  seconds, lines = _interrupt_at(proc, f'step 5/{STEPS}', signal.SIGINT)
  assert proc.returncode == 130, lines[-5:]
  assert seconds < 30
  last = lines[-1]
  m = re.fullmatch(r'stopped on SIGINT \(checkpoint of step (\d+) in (.*)\); resume with: python launch\.py .*', last)
  assert m, lines[-5:]
  step = int(m.group(1))
  assert 5 <= step < STEPS and _steps(interrupted) == [step] and m.group(2) == str(interrupted / 'checkpoints')
  assert not any('Traceback' in line for line in lines)

  # The same command again resumes there and ends as the run never interrupted, bit for bit.
  resumed = subprocess.run(_command(data_dir, interrupted), cwd=REPO, capture_output=True, text=True)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert f'resumed from the checkpoint of step {step}' in resumed.stdout + resumed.stderr
  a, b = _state(tmp_path / 'whole', STEPS), _state(interrupted, STEPS)
  for key in ('params', 'batch_stats', 'opt_state', 'step'):
    for x, y in zip(jax.tree.leaves(a[key]), jax.tree.leaves(b[key]), strict=True):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f'{key} after an interrupt at {step}')


def test_sigterm_exits_143_and_a_second_ctrl_c_exits_at_once(tmp_path):
  data_dir = tmp_path / 'tfds'
  proc = _start(data_dir, tmp_path / 'term')
  seconds, lines = _interrupt_at(proc, f'step 3/{STEPS}', signal.SIGTERM)
  assert proc.returncode == 143 and seconds < 30
  assert re.fullmatch(r'stopped on SIGTERM \(checkpoint of step \d+ in .*\); resume with: .*', lines[-1]), lines[-3:]

  proc = _start(data_dir, tmp_path / 'twice')
  seconds, lines = _interrupt_at(proc, f'step 3/{STEPS}', signal.SIGINT, signal.SIGINT)
  assert proc.returncode == 130 and seconds < 30

"""A run killed with SIGKILL at a random moment and started again with the same command ends with
the same parameters, optimizer state, BatchNorm statistics and metrics as a run never interrupted
(bit for bit on CPU: the batches are a function of (seed, step), the step's randomness of the
state's step counter, and XLA:CPU reduces in a fixed order)."""
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import synthetic
from tests.conftest import REPO
from tests.sizes import tiny
from ws3d_jax.train import trainer

pytestmark = pytest.mark.slow  # a whole run, then a run in a subprocess killed and resumed

RUN = '''
import os
import sys
import jax
# The suite's settings (tests/conftest.py), so the programs the test compiled load from its cache.
jax.config.update('jax_default_matmul_precision', 'highest')
jax.config.update('jax_compilation_cache_dir', os.environ['WS3D_COMPILATION_CACHE'])
from configs import synthetic
from tests.sizes import tiny
from ws3d_jax.train import trainer
config = tiny(synthetic.get_config('smoke'))
config.data.data_dir, config.boundary.enabled = sys.argv[1], False
config.train.steps, config.train.checkpoint_every, config.train.log_every = 12, 2, 1
trainer.train_and_evaluate(config, sys.argv[2])
'''


def _config(data_dir):
  config = tiny(synthetic.get_config('smoke'))
  config.data.data_dir, config.boundary.enabled = str(data_dir), False
  config.train.steps, config.train.checkpoint_every, config.train.log_every = 12, 2, 1
  return config


def _final_state(work):
  manager = ocp.CheckpointManager((work / 'checkpoints').absolute())
  return manager.restore(12)


def test_a_run_killed_at_a_random_moment_resumes_to_the_same_result(tmp_path):
  data_dir = tmp_path / 'tfds'
  whole = trainer.train_and_evaluate(_config(data_dir), str(tmp_path / 'whole'))

  killed = tmp_path / 'killed'
  proc = subprocess.Popen([sys.executable, '-c', RUN, str(data_dir), str(killed)], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  # Once checkpoints 2 and 4 exist, a random moment within about the next four steps (mid-step,
  # mid-save), measured by this machine's own pace: a fixed delay (it was up to 2 s) outlasted the
  # eight remaining steps once the compilation cache made them fast.
  deadline = time.time() + 900

  def wait_for_checkpoint(step):
    while not (killed / 'checkpoints' / str(step)).is_dir():
      assert proc.poll() is None and time.time() < deadline, f'the run to kill ended or hung before step {step}'
      time.sleep(0.02)
    return time.time()

  at_two = wait_for_checkpoint(2)
  two_steps = wait_for_checkpoint(4) - at_two
  time.sleep(random.Random().uniform(0.0, 2 * two_steps))
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  steps_at_kill = sorted(int(p.name) for p in (killed / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps_at_kill and steps_at_kill[-1] < 12, f'killed too late to test a resume: {steps_at_kill}'

  resumed = trainer.train_and_evaluate(_config(data_dir), str(killed))
  assert resumed == whole
  a, b = _final_state(tmp_path / 'whole'), _final_state(killed)
  for key in ('params', 'batch_stats', 'opt_state', 'step'):
    for x, y in zip(jax.tree.leaves(a[key]), jax.tree.leaves(b[key]), strict=True):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f'{key} after a kill at {steps_at_kill}')

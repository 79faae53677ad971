"""Multi-host training for real: two ``jax.distributed`` processes on this machine (a coordinator
on 127.0.0.1, gloo for the CPU collectives, one CPU device each) train the smoke config through
``launch.py --multihost`` to the end, and end where one process with two devices ends.

Both runs cut the same global batches over the same two devices, agree on the same capacities
and average over the same devices, so the result is the same to the bit on CPU (a sum of two
floats does not depend on which process adds them). Then the two-process run is pre-empted
with its last checkpoint half written: started again it stops with a message, and once the step
is set aside by hand it resumes to the same end. Every process of a
run is a subprocess:
``jax.distributed`` initialises once per interpreter and the device count is fixed at start.
"""
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import synthetic
from tests.conftest import REPO
from tests.sizes import TINY_FLAGS
from ws3d_jax.data import sources
from ws3d_jax.train import run_builder

pytestmark = pytest.mark.slow  # three launch.py processes train, twice more after the pre-emption

STEPS = 4  # the smoke config's length is 6; 4 still crosses a checkpoint (3) and the end
OVERRIDES = ['--config=configs/synthetic.py:smoke', f'--config.train.steps={STEPS}',
             '--config.train.batch_size=4', '--config.train.labeled_batch=2', '--config.train.unlabeled_batch=2',
             # the suite's network, but buckets not pinned: the devices' shards then need different
             # rungs at some steps, and only the processes' exchange of counts keeps them in step
             *TINY_FLAGS, '--config.buckets.pin=False']


def _env(tmp_path, devices: int) -> dict:
  flags = '--xla_backend_optimization_level=0' + (f' --xla_force_host_platform_device_count={devices}'
                                                  if devices > 1 else '')
  return dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS=flags,
              WS3D_NO_REEXEC='1')


def _launch(tmp_path, workdir, devices: int, name: str, *extra) -> subprocess.Popen:
  log = open(tmp_path / f'{name}.log', 'w')
  command = [sys.executable, 'launch.py', *OVERRIDES, f'--config.data.data_dir={tmp_path / "tfds"}',
             f'--workdir={workdir}', *extra]
  return subprocess.Popen(command, cwd=REPO, env=_env(tmp_path, devices), stdout=log, stderr=subprocess.STDOUT)


def _wait(proc, name: str, tmp_path) -> None:
  try:
    code = proc.wait(timeout=1500)
  except subprocess.TimeoutExpired:
    proc.kill()
    code = 'timeout'
  if code != 0:
    logs = '\n'.join(f'--- {p.name}\n{p.read_text()[-3000:]}' for p in sorted(tmp_path.glob('*.log')))
    raise AssertionError(f'{name} ended with {code}\n{logs}')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _final_state(workdir):
  return ocp.CheckpointManager((workdir / 'checkpoints').absolute()).restore(STEPS)


def _two_processes(tmp_path, workdir, tag: str) -> dict:
  port = _free_port()
  return {f'process {p} of the two-process run{tag}': _launch(
      tmp_path, workdir, 1, f'process{p}{tag}', '--multihost', f'--coordinator_address=127.0.0.1:{port}',
      '--num_processes=2', f'--process_id={p}') for p in range(2)}


def _assert_same_state(a, b) -> None:
  for key in ('params', 'batch_stats', 'opt_state', 'step'):
    for x, y in zip(jax.tree.leaves(a[key]), jax.tree.leaves(b[key]), strict=True):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=key)


def test_two_processes_train_as_one_process_with_two_devices(tmp_path):
  config = synthetic.get_config('smoke')
  config.data.data_dir = str(tmp_path / 'tfds')
  sources.load_sources(run_builder.data_spec(config))  # built once, before three processes read it

  # The three processes at once: they mostly compile, one core each.
  single, multi = tmp_path / 'single', tmp_path / 'multi'
  runs = {'the single-process 2-device run': _launch(tmp_path, single, 2, 'single'),
          **_two_processes(tmp_path, multi, '')}
  for name, proc in runs.items():
    _wait(proc, name, tmp_path)

  reference = _final_state(single)
  _assert_same_state(reference, _final_state(multi))
  assert int(np.asarray(reference['step'])) == STEPS
  metrics = [json.loads((w / 'eval' / 'metrics.json').read_text()) for w in (single, multi)]
  assert metrics[0] == metrics[1]
  with np.load(single / 'boundary' / 'points.npz') as x, np.load(multi / 'boundary' / 'points.npz') as y:
    assert sorted(x.files) == sorted(y.files)
    for k in x.files:
      np.testing.assert_array_equal(x[k], y[k])
  # Only the first process wrote events and exports; each process held its own lock.
  assert len(list((multi / 'tensorboard').glob('events.out.tfevents.*'))) == 1
  assert sorted(p.name for p in multi.glob('.lock*')) == ['.lock', '.lock.1']

  # Pre-empted while writing the last checkpoint, before the final evaluation. Started again, the
  # two processes stop at the damaged step and say how to set it aside; done by hand, they
  # resume from the step before it and end where the run never interrupted ends.
  (multi / 'checkpoints' / str(STEPS) / 'default' / '_METADATA').write_text('')
  (multi / 'eval' / 'metrics.json').unlink()
  for name, proc in _two_processes(tmp_path, multi, '_damaged').items():
    assert proc.wait(timeout=900) != 0, name
  for p in range(2):
    log = (tmp_path / f'process{p}_damaged.log').read_text()
    assert f'the checkpoint of step {STEPS} in' in log and 'move it aside' in log, log[-3000:]
  (multi / 'checkpoints_damaged').mkdir()
  (multi / 'checkpoints' / str(STEPS)).rename(multi / 'checkpoints_damaged' / str(STEPS))
  for name, proc in _two_processes(tmp_path, multi, '_resumed').items():
    _wait(proc, name, tmp_path)
  for p in range(2):
    assert 'resumed from the checkpoint of step 3' in (tmp_path / f'process{p}_resumed.log').read_text()
  _assert_same_state(reference, _final_state(multi))
  assert json.loads((multi / 'eval' / 'metrics.json').read_text()) == metrics[0]

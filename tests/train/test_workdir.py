"""A workdir holds one run at a time, must be writable from the start, and a scene too wide for
the voxel keys stops the run before anything trains."""
import os
import subprocess
import sys

import pytest

from configs import synthetic
from tests.conftest import REPO
from ws3d_jax import files
from ws3d_jax.data import sources
from ws3d_jax.train import run_builder, trainer


def test_a_second_run_in_a_held_workdir_refuses(tmp_path):
  work = tmp_path / 'run'
  with files.exclusive(work):
    with pytest.raises(files.WorkdirInUse, match=rf'{work} is in use by another live run \(pid {os.getpid()}: '):
      trainer.train_and_evaluate(synthetic.get_config('smoke'), str(work))
  assert not (work / 'checkpoints').exists()  # refused before anything was written


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
  holder = subprocess.Popen([sys.executable, '-c', 'import sys, time\nfrom ws3d_jax import files\n'
                             'with files.exclusive(sys.argv[1]):\n  print("held", flush=True)\n  time.sleep(120)',
                             str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(files.WorkdirInUse, match=f'pid {holder.pid}'):
      with files.exclusive(tmp_path):
        pass
  finally:
    holder.kill()
    holder.wait()
  with files.exclusive(tmp_path):  # SIGKILL released it
    pass


def test_a_workdir_that_cannot_be_written_fails_at_start(tmp_path):
  work = tmp_path / 'run'
  work.mkdir()
  (work / 'checkpoints').write_text('a file where the checkpoint folder goes')
  with pytest.raises(PermissionError, match=f'{work / "checkpoints"} cannot be written.*first save'):
    trainer.train_and_evaluate(synthetic.get_config('smoke'), str(work))
  if os.geteuid() != 0:  # root writes through permission bits
    (work / 'checkpoints').unlink()
    work.chmod(0o500)
    try:
      with pytest.raises(PermissionError, match='cannot be written'):
        trainer.train_and_evaluate(synthetic.get_config('smoke'), str(work))
    finally:
      work.chmod(0o700)


def test_a_scene_too_wide_for_the_voxel_keys_is_named_before_training():
  config = synthetic.get_config('smoke')
  config.data.voxel_size = 0.02  # 65535 voxels: 1311 m an axis, 843 m once rotated and scaled by 1.1
  catalog = {'ids': {'train': ['room_a', 'room_b'], 'eval': ['room_c']},
             'span': {'train': [12.0, 5e4], 'eval': [900.0]}}
  with pytest.raises(ValueError, match=r'2 scene\(s\) span more than the 843 m .*room_b \(50000 m\), room_c'):
    sources.check_spans(catalog, run_builder.data_spec(config))
  catalog['span'] = {'train': [12.0, 800.0], 'eval': [30.0]}
  sources.check_spans(catalog, run_builder.data_spec(config))

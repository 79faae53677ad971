"""The main job on the real SemanticKITTI sample (../shared/data/semantickitti): launch.py
trains, is killed with SIGKILL mid-training, resumes from its last checkpoint, evaluates and
exports predictions the official semantic-kitti-api evaluator can read."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, shared_data
from tests.sizes import TINY_FLAGS

pytestmark = pytest.mark.slow  # launch.py trains on the real KITTI sample, is killed and resumes


def _launch(args, env, log):
  return subprocess.Popen([sys.executable, 'launch.py', *args], cwd=REPO, env=env, stdout=log,
                          stderr=subprocess.STDOUT)


def _checkpoints(directory):
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def test_kitti_sample_trains_survives_kill_9_and_exports_official_labels(tmp_path):
  kitti = shared_data('semantickitti')
  work = tmp_path / 'run'
  env = dict(os.environ)  # the session's compilation cache (tests/conftest.py) included
  env.pop('XLA_FLAGS', None)  # launch.py's own CPU setting, as a user runs it
  args = ['--config=configs/semkitti.py:smoke', f'--workdir={work}', f'--config.data.manual_dir={kitti}',
          f'--config.data.data_dir={tmp_path / "tfds"}', '--config.data.holdout=00_000002',
          '--config.train.steps=30', '--config.train.checkpoint_every=5', '--config.train.log_every=5', *TINY_FLAGS]

  with open(tmp_path / 'first.log', 'w') as log:
    first = _launch(args, env, log)
    deadline = time.time() + 1500
    while not _checkpoints(work / 'checkpoints') and first.poll() is None and time.time() < deadline:
      time.sleep(1)
    killed_at = _checkpoints(work / 'checkpoints')
    first.send_signal(signal.SIGKILL)
    first.wait()
  assert killed_at, (tmp_path / 'first.log').read_text()[-3000:]
  assert not (work / 'eval' / 'metrics.json').exists()  # it died mid-training

  with open(tmp_path / 'second.log', 'w') as log:
    second = _launch(args, env, log)
    assert second.wait(timeout=1500) == 0, (tmp_path / 'second.log').read_text()[-3000:]
  text = (tmp_path / 'second.log').read_text()
  resumed = int(text.split('resumed from the checkpoint of step ')[1].split()[0])
  assert resumed >= killed_at[-1] > 0
  assert _checkpoints(work / 'checkpoints')[-1] == 30

  metrics = json.loads((work / 'eval' / 'metrics.json').read_text())
  assert len(metrics['iou']) == 19 and 0.0 <= metrics['miou'] <= 1.0
  # The official layout and format: uint32 raw ids, one per point of the scan.
  label_file = work / 'eval' / 'predictions' / 'sequences' / '00' / 'predictions' / '000002.label'
  raw = np.fromfile(label_file, dtype=np.uint32)
  points = np.fromfile(kitti / 'sequences' / '00' / 'velodyne' / '000002.bin', dtype=np.float32).reshape(-1, 4)
  assert len(raw) == len(points) and metrics['points'] <= len(points)
  # learning_map_inv of semantic-kitti.yaml: ignore -> 0, then the raw ids of the 19 classes.
  valid_raw = {0, 10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81}
  assert set(np.unique(raw & 0xFFFF).tolist()) <= valid_raw

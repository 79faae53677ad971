"""Counts the console lines of every bad-input case of docs/fault_cases.md, as a user meets them:
launch.py without --verbose, on a fresh workdir. A line counts unless it is the run's own INFO
progress (``I....`` lines). Writes the table to stdout (docs/fault_cases.md holds the last one).

    python scripts/fault_console_lines.py [--shared=../shared/data]

The data cases corrupt a copy of the SemanticKITTI sample in ../shared/data (skipped, and said
so, where it is absent). About 3 minutes on 2 cores (each case starts TensorFlow and jax).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.sizes import TINY_FLAGS  # noqa: E402

SMOKE = ['--config=configs/synthetic.py:smoke,sup_only', '--config.train.steps=2', '--config.train.checkpoint_every=1',
         *TINY_FLAGS]


def launch(args, cwd=REPO) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def said(result) -> list[str]:
  return [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip() and not ln.startswith('I')]


def kitti_copy(shared: Path, tmp: Path, corrupt) -> Path:
  root = tmp / 'kitti'
  shutil.copytree(shared / 'semantickitti', root)
  scan = root / 'sequences' / '00'
  corrupt(scan / 'velodyne' / '000001.bin', scan / 'labels' / '000001.label')
  return root


def truncate_bin(bin_path, label_path):
  with open(bin_path, 'ab') as f:
    f.write(b'\0' * 7)


def short_label(bin_path, label_path):
  label_path.write_bytes(label_path.read_bytes()[:-8])


def unknown_ids(bin_path, label_path):
  labels = np.fromfile(label_path, np.uint32)
  labels[:3] = 7777
  labels.tofile(label_path)


def nan_points(bin_path, label_path):
  points = np.fromfile(bin_path, np.float32).reshape(-1, 4)
  points[5, 1] = np.nan
  points.tofile(bin_path)


def far_point(bin_path, label_path):
  points = np.fromfile(bin_path, np.float32).reshape(-1, 4)
  points[5, 0] = 5e4
  points.tofile(bin_path)


def empty_scan(bin_path, label_path):
  bin_path.write_bytes(b'')
  label_path.write_bytes(b'')


def missing_label(bin_path, label_path):
  label_path.unlink()


DATA_CASES = {'truncated .bin': truncate_bin, '.label of the wrong length': short_label,
              'unknown raw label ids': unknown_ids, 'NaN coordinates': nan_points, 'empty scan': empty_scan,
              'missing .label': missing_label, 'a point far out of range': far_point}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--shared', default=str(REPO.parent / 'shared' / 'data'))
  shared = Path(parser.parse_args().shared)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    data = f'--config.data.data_dir={tmp / "tfds"}'

    def case(name, args, setup=None):
      work = tmp / f'w{len(rows)}'
      if setup:
        setup(work)
      result = launch([*args, f'--workdir={work}'] if not any(a.startswith('--workdir') for a in args) else args)
      lines = said(result)
      rows.append((name, result.returncode, len(lines), lines[0][:110] if lines else ''))
      print(f'{name}: exit {result.returncode}, {len(lines)} line(s)', file=sys.stderr, flush=True)

    case('misspelt field', [*SMOKE, data, '--config.train.stesp=5'])
    case('unknown token', ['--config=configs/synthetic.py:5pc'])
    case('a value of the wrong type', [*SMOKE, data, '--config.train.steps=many'])
    case('label ratio 0', [*SMOKE, data, '--config.data.label_ratio=0'])
    case('optim.lr negative', [*SMOKE, data, '--config.optim.lr=-1'])
    case('batch_size against the two batches', ['--config=configs/synthetic.py:smoke', *TINY_FLAGS, data,
                                                 '--config.train.batch_size=32'])
    case('no manual_dir for an unbuilt data set', ['--config=configs/semkitti.py:smoke', data])
    case('manual_dir that does not exist', ['--config=configs/semkitti.py:smoke', data,
                                            f'--config.data.manual_dir={tmp / "nowhere"}'])
    case('train.init_from without checkpoints', [*SMOKE, data, f'--config.train.init_from={tmp}'])
    case('a workdir that cannot be written', [*SMOKE, data], setup=lambda w: w.write_text('a file'))
    case('NaN loss', [*SMOKE, data, '--config.optim.lr=inf'])

    def finished_run(work):
      first = launch([*SMOKE, data, f'--workdir={work}'])
      assert first.returncode == 0, first.stderr[-1000:]
    case('changed model config on resume', [*SMOKE, data, '--config.model.width_scale=0.25'], setup=finished_run)
    case('changed model config on resume, accepted', [*SMOKE, data, '--config.model.width_scale=0.25',
                                                       '--config.train.resume_changes=model.width_scale'],
         setup=finished_run)
    if (shared / 'semantickitti').is_dir():
      for name, corrupt in DATA_CASES.items():
        case(name, ['--config=configs/semkitti.py:smoke', f'--config.data.data_dir={tmp / name.replace(" ", "_")}',
                    f'--config.data.manual_dir={kitti_copy(shared, tmp / name.replace(" ", "_"), corrupt)}'])
    else:
      print(f'{shared}/semantickitti is absent: the data cases are skipped', file=sys.stderr)
  print('| case | exit | console lines | first line |\n|---|---|---|---|')
  for name, code, count, first in rows:
    print(f'| {name} | {code} | {count} | `{first}` |')


if __name__ == '__main__':
  main()

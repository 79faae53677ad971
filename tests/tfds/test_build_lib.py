"""load_or_build, bad input, failed builds, reading without TensorFlow, Beam and the TFDS CLI."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.tfds.conftest import (REPO, by_id, check_sources, write_kitti_scan, write_s3dis_room,
                                 write_scannet_raw_scene)
from ws3d_jax.data import build, tfds_features, tfds_scenes
from ws3d_jax.data.tfds_features import BadSceneError


def _kitti_task(root, sid, split='train'):
  return tfds_features.task(sid, tfds_scenes.read_kitti, str(root), sid, split)


# --------------------------------------------------------------------------------------------
# Bad input: a clear error naming the file and the problem, or a logged, counted skip.

def _truncate(bin_path, label_path):
  bin_path.write_bytes(bin_path.read_bytes()[:-6])


def _short_labels(bin_path, label_path):
  label_path.write_bytes(label_path.read_bytes()[:-4])


def _unknown_id(bin_path, label_path):
  labels = np.fromfile(label_path, '<u4')
  labels[7] = 77
  labels.tofile(label_path)


def _nan_point(bin_path, label_path):
  points = np.fromfile(bin_path, '<f4').reshape(-1, 4)
  points[3, 1] = np.nan
  points.tofile(bin_path)


def _no_labels(bin_path, label_path):
  label_path.unlink()


def _empty(bin_path, label_path):
  bin_path.write_bytes(b'')
  label_path.write_bytes(b'')


@pytest.mark.parametrize('corrupt, file_kind, pattern', [
    (_truncate, 'bin', r'{name}: truncated scan'),
    (_short_labels, 'label', r'{name}: label file has 599 entries but the scan has 600 points'),
    (_unknown_id, 'label', r'{name}: unknown SemanticKITTI semantic ids: 77 \(1 points\)'),
    (_nan_point, 'bin', r'{name}: 1 of 600 points have NaN or infinite coordinates'),
    (_no_labels, 'label', r'missing file.*{name}'),
    (_empty, 'bin', r'{name}: no points'),
])
def test_bad_kitti_scan(tmp_path, caplog, corrupt, file_kind, pattern):
  bin_path, label_path = write_kitti_scan(tmp_path, 0, 5)
  corrupt(bin_path, label_path)
  bad = bin_path if file_kind == 'bin' else label_path
  task = _kitti_task(tmp_path, '00_000005')
  with pytest.raises(BadSceneError, match='scene 00_000005: .*' + pattern.format(name=bad.name)):
    tfds_features.convert_scene(task, 'semantickitti')
  with caplog.at_level(logging.WARNING):
    assert tfds_features.convert_scene(task, 'semantickitti', skip_bad_scenes=True) == []
  assert 'skipping bad scene 00_000005' in caplog.text and bad.name in caplog.text


def test_bad_scannet_and_s3dis_scenes(tmp_path):
  write_scannet_raw_scene(tmp_path / 'scans', 'scene0001_00', n=100)
  agg = tmp_path / 'scans' / 'scene0001_00' / 'scene0001_00.aggregation.json'
  agg.unlink()
  task = tfds_features.task('scene0001_00', tfds_scenes.read_scannet, str(tmp_path),
                            'scene0001_00', 'train')
  with pytest.raises(BadSceneError, match='missing file.*scene0001_00.aggregation.json'):
    tfds_features.convert_scene(task, 'scannet')
  agg.write_text('{"segGroups": [')
  with pytest.raises(BadSceneError, match='aggregation.json: not valid JSON'):
    tfds_features.convert_scene(task, 'scannet')

  anno = write_s3dis_room(tmp_path / 's3dis', 1, 'office_1', n=30)
  for f in anno.glob('*.txt'):
    f.write_text('')
  task = tfds_features.task('Area_1_office_1', tfds_scenes.read_s3dis, str(tmp_path / 's3dis'),
                            'Area_1_office_1')
  with pytest.raises(BadSceneError, match='Annotations: empty room'):
    tfds_features.convert_scene(task, 's3dis')


# --------------------------------------------------------------------------------------------
# A failed build leaves nothing that looks complete; a later good build succeeds.

def test_failed_build_then_good_build(tmp_path, caplog):
  manual, out = tmp_path / 'manual', tmp_path / 'out'
  write_kitti_scan(manual, 0, 0, seed=1)
  bad_bin, _ = write_kitti_scan(manual, 0, 1, seed=2)
  write_kitti_scan(manual, 8, 0, seed=3)
  good_bytes = bad_bin.read_bytes()
  bad_bin.write_bytes(good_bytes[:-6])

  with pytest.raises(BadSceneError, match='scene 00_000001: .*000001.bin: truncated scan') as e:
    build.load_or_build('semantic_kitti', out, manual)
  assert '--config.data.skip_bad_scenes=true' in str(e.value)  # the way past it, in the message
  assert not build.is_built('semantic_kitti', out)
  assert not [p for p in out.rglob('*') if 'incomplete' in p.name]
  assert not list(out.rglob('*.array_record*')) and not list(out.rglob('dataset_info.json'))
  with pytest.raises(FileNotFoundError, match='not built'):
    build.load_or_build('semantic_kitti', out)  # nothing to read, no download given

  # skip_bad_scenes: builds without the bad scan, logs and counts it (its own config folder).
  with caplog.at_level(logging.WARNING):
    skipped = build.load_or_build('semantic_kitti', out, manual,
                                  config={'skip_bad_scenes': True})
  assert {s: len(v) for s, v in skipped.items()} == {'train': 1, 'validation': 1}
  assert 'skipping bad scene 00_000001' in caplog.text and 'skipped 1 bad scenes' in caplog.text
  info = tfds.builder_from_directory(os.fspath(out / 'semantic_kitti' / 'skip_bad_scenes' / '1.0.0')).info
  assert info.metadata['skipped_scenes'] == 1
  assert not build.is_built('semantic_kitti', out)  # the default config is still unbuilt

  bad_bin.write_bytes(good_bytes)
  sources = build.load_or_build('semantic_kitti', out, manual)
  check_sources(sources, 1, {'train': 2, 'validation': 1})
  assert build.is_built('semantic_kitti', out)


# --------------------------------------------------------------------------------------------
# Reading does not import TensorFlow.

READ_SCRIPT = """
import sys, json
import grain
from ws3d_jax.data.build import load_or_build
import tensorflow_datasets as tfds
data_dir, config = sys.argv[1], json.loads(sys.argv[2])
sources = load_or_build('synthetic', data_dir, config=config)
ex = sources['train'][0]
via_grain = grain.MapDataset.source(sources['train'])[1]
raw = tfds.data_source('synthetic/train2_val1_pts2000', split='validation', data_dir=data_dir)[0]
print(json.dumps({'tf': 'tensorflow' in sys.modules, 'id': ex['scene_id'],
                  'n': int(len(ex['xyz'])), 'grain_id': via_grain['scene_id'],
                  'raw_id': raw['scene_id'].decode()}))
"""


def test_reading_does_not_import_tensorflow(synthetic_tiny):
  data_dir, config, _ = synthetic_tiny
  env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')])}
  proc = subprocess.run([sys.executable, '-c', READ_SCRIPT, str(data_dir), json.dumps(config)],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = json.loads(proc.stdout.strip().splitlines()[-1])
  assert got['tf'] is False, 'reading a data source imported TensorFlow'
  assert {got['id'], got['grain_id']} == {'room_000000', 'room_000001'} and got['n'] == 2000
  assert got['raw_id'] == 'room_100000'


# --------------------------------------------------------------------------------------------
# Apache Beam (DirectRunner) gives the same examples as the in-process build.

def test_beam_direct_runner_synthetic(synthetic_tiny, tmp_path):
  beam = pytest.importorskip('apache_beam')
  _, _, local = synthetic_tiny
  builder = build.make_builder('synthetic', tmp_path, {'num_train': 2, 'num_val': 0,
                                                       'num_points': 2000})
  # Beam 2.77's DirectRunner first tries the Prism runner and downloads it from GitHub unless
  # prism_location names a local binary; a missing one makes it fall back at once, offline.
  options = beam.options.pipeline_options.PipelineOptions(
      ['--direct_num_workers=1', f'--prism_location={tmp_path / "no-prism.zip"}'])
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      beam_runner='DirectRunner', beam_options=options))
  assert builder._use_beam  # the Beam path ran (a PTransform per split)
  sources = build.read_built(builder.data_path)
  check_sources(sources, 3, {'train': 2})
  local_train, beam_train = by_id(local['train']), by_id(sources['train'])
  assert sorted(beam_train) == sorted(local_train) == ['room_000000', 'room_000001']
  for sid, ex in beam_train.items():
    for key, value in ex.items():
      np.testing.assert_array_equal(value, local_train[sid][key], err_msg=f'{sid} {key}')


def test_failed_beam_build_leaves_nothing(tmp_path):
  pytest.importorskip('apache_beam')
  manual, out = tmp_path / 'manual', tmp_path / 'out'
  write_kitti_scan(manual, 0, 0, seed=1, n=200)
  bad_bin, _ = write_kitti_scan(manual, 0, 1, seed=2, n=200)
  bad_bin.write_bytes(bad_bin.read_bytes()[:-6])
  with pytest.raises(Exception, match='000001.bin: truncated scan'):
    build.load_or_build('semantic_kitti', out, manual, beam=True)
  assert not build.is_built('semantic_kitti', out)
  assert not [p for p in out.rglob('*') if 'incomplete' in p.name]
  assert not list(out.rglob('*.array_record*'))


# --------------------------------------------------------------------------------------------
# The TFDS command line builds a builder directory (here with Beam options too).

@pytest.mark.slow  # the tfds command line in a subprocess
def test_tfds_cli_build(tmp_path):
  tfds_cli = Path(sys.executable).parent / 'tfds'
  if not tfds_cli.exists():
    pytest.skip(f'no tfds command line beside {sys.executable}')
  pytest.importorskip('mlcroissant', reason='the tfds command line of TFDS 4.9.10 needs it')
  manual, out = tmp_path / 'manual', tmp_path / 'out'
  write_kitti_scan(manual, 0, 0, seed=1)
  write_kitti_scan(manual, 8, 0, seed=2)
  write_kitti_scan(manual, 11, 0, seed=3, labels=False)
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}  # the builder finds ws3d_jax
  proc = subprocess.run(
      [str(tfds_cli), 'build', str(REPO / 'tfds_builders' / 'semantic_kitti'),
       f'--manual_dir={manual}', f'--data_dir={out}',
       '--beam_pipeline_options=runner=FnApiRunner,direct_num_workers=1'],
      capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert build.is_built('semantic_kitti', out)
  sources = build.load_or_build('semantic_kitti', out)  # found complete: no manual_dir needed
  check_sources(sources, 1, {'train': 1, 'validation': 1, 'test': 1})
  assert sources['test'][0]['scene_id'] == '11_000000'


# --------------------------------------------------------------------------------------------
# A build remembers the raw files it came from; a changed download is not read as the old build.

def test_changed_raw_file_is_detected_and_named(tmp_path, caplog):
  manual, out = tmp_path / 'manual', tmp_path / 'out'
  write_kitti_scan(manual, 0, 0, seed=1, n=200)
  write_kitti_scan(manual, 8, 0, seed=3, n=200)
  build.load_or_build('semantic_kitti', out, manual)
  data_path = out / 'semantic_kitti' / 'default' / '1.0.0'
  assert (data_path / build.RAW_FINGERPRINT).is_file()
  build.load_or_build('semantic_kitti', out, manual)  # unchanged: read as it is
  build.load_or_build('semantic_kitti', out)  # no manual_dir: nothing to compare with

  # the user replaces a scan of the download (and its labels) after the build
  write_kitti_scan(manual, 8, 0, seed=5, n=150)
  with pytest.raises(RuntimeError, match=r'built from other raw files .*08/velodyne/000000.bin changed.*rm -r'):
    build.load_or_build('semantic_kitti', out, manual)
  # the command it names rebuilds from the new files
  import shutil
  shutil.rmtree(data_path)
  sources = build.load_or_build('semantic_kitti', out, manual)
  assert len(sources['validation'][0]['xyz']) == 150

  # a build without a record (tfds build, or an older version) is used, with a warning
  (data_path / build.RAW_FINGERPRINT).unlink()
  with caplog.at_level(logging.WARNING):
    build.load_or_build('semantic_kitti', out, manual)
  assert 'no record of the raw files' in caplog.text


BUILD_ONCE = '''
import logging
import sys
logging.basicConfig(level=logging.INFO)
from ws3d_jax.data.build import load_or_build
sources = load_or_build('synthetic', sys.argv[1], config={'num_train': 24, 'num_val': 2, 'num_points': 8000})
print(len(sources['train']), sorted(sources['train'][i]['scene_id'] for i in range(len(sources['train'])))[0])
'''


@pytest.mark.slow  # two processes build a data set
def test_two_runs_building_the_same_new_data_set_at_once_both_read_one_build(tmp_path):
  # TFDS alone failed the second with "FileExistsError: Cannot rename ...incomplete...".
  env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='2')
  procs = [subprocess.Popen([sys.executable, '-c', BUILD_ONCE, str(tmp_path)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-2000:]
  assert outs[0][0] == outs[1][0] and outs[0][0].startswith('24 ')
  logs = outs[0][1] + outs[1][1]
  assert logs.count('built synthetic/') == 1  # one build ...
  assert 'waiting for it' in logs  # ... the other process waited for it
  assert len(list((tmp_path / 'synthetic').glob('*/1.0.0'))) == 1

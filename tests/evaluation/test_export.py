"""Tests of ws3d_jax.evaluation.export against the benchmarks' own reading logic.

The references are written out here (the semantic-kitti-api evaluator's read, the ScanNet
benchmark's 20 NYU40 ids, open3d's PLY reader), not taken from the code under test.
"""
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import yaml

from ws3d_jax import files
from ws3d_jax.data import labels, ply
from ws3d_jax.evaluation import export

SEMANTICKITTI_YAML = (Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data'
                      / 'semantickitti' / 'semantic-kitti.yaml').resolve()
# The ScanNet benchmark's VALID_CLASS_IDS (evaluate_semantic_label.py), in class order.
SCANNET_NYU40 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]


def _scene(num_classes, n=200, seed=0, ignore=True):
  rng = np.random.default_rng(seed)
  pred = np.concatenate([np.arange(num_classes), rng.integers(0, num_classes, n - num_classes)])
  if ignore:
    pred[[3, 50, 77]] = labels.IGNORE_LABEL
  xyz = rng.normal(size=(n, 3)).astype(np.float32) * 10
  return xyz, pred


def _official_semantickitti_read(path, learning_map):
  """What semantic-kitti-api's evaluate_semantics.py does with a prediction file."""
  remap_lut = np.zeros(max(learning_map) + 100, np.int32)
  remap_lut[list(learning_map)] = list(learning_map.values())
  pred = np.fromfile(path, dtype=np.int32).reshape(-1)
  return remap_lut[pred & 0xFFFF]


# --------------------------------------------------------------------------------------------
# SemanticKITTI.

def test_semantickitti_label_path_layout(tmp_path):
  assert (export.semantickitti_label_path(tmp_path, '08_000123')
          == tmp_path / 'sequences' / '08' / 'predictions' / '000123.label')
  with pytest.raises(ValueError, match='SemanticKITTI scene id'):
    export.semantickitti_label_path(tmp_path, 'scene0000_00x')


def test_semantickitti_round_trip_through_official_reader(tmp_path):
  xyz, pred = _scene(19)
  paths = export.export_predictions('semantickitti', tmp_path, '08_000123', xyz, pred,
                                    {'official'})
  path = tmp_path / 'predictions' / 'sequences' / '08' / 'predictions' / '000123.label'
  assert paths == [path]
  assert path.stat().st_size == 4 * len(pred)
  raw = np.fromfile(path, dtype=np.uint32)
  assert (raw >> 16 == 0).all()  # instance bits
  learn = _official_semantickitti_read(path, labels.SEMANTICKITTI_LEARNING_MAP)
  np.testing.assert_array_equal(learn, np.where(pred == 255, 0, pred + 1))
  # A few raw ids checked by hand: car -> 10, road -> 40, traffic-sign -> 81, ignore -> 0.
  assert raw[[0, 8, 18, 3]].tolist() == [10, 40, 81, 0]
  assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left


def test_semantickitti_matches_official_yaml(tmp_path):
  if not SEMANTICKITTI_YAML.exists():
    pytest.skip(f'official semantic-kitti.yaml not found at {SEMANTICKITTI_YAML} '
                '(expected in ../shared/data beside the repository)')
  with open(SEMANTICKITTI_YAML) as f:
    cfg = yaml.safe_load(f)
  learning_map = {int(k): int(v) for k, v in cfg['learning_map'].items()}
  learning_map_inv = {int(k): int(v) for k, v in cfg['learning_map_inv'].items()}
  _, pred = _scene(19, seed=1)
  for inv in (None, learning_map_inv):  # embedded default, and the yaml's own inverse
    path = export.write_semantickitti_labels(tmp_path / str(inv is None), '13_004071', pred,
                                             learning_map_inv=inv)
    assert path.relative_to(tmp_path).parts[1:] == ('sequences', '13', 'predictions',
                                                    '004071.label')
    learn = _official_semantickitti_read(path, learning_map)
    np.testing.assert_array_equal(learn, np.where(pred == 255, 0, pred + 1))


# --------------------------------------------------------------------------------------------
# ScanNet.

def test_scannet_txt_has_one_nyu40_id_per_vertex(tmp_path):
  xyz, pred = _scene(20, ignore=False)
  paths = export.export_predictions('scannet', tmp_path, 'scene0707_00', xyz, pred,
                                    ('official',))
  assert paths == [tmp_path / 'predictions' / 'scene0707_00.txt']
  lines = paths[0].read_text().splitlines()
  assert len(lines) == len(xyz)
  np.testing.assert_array_equal(np.array(lines, dtype=np.int64),
                                np.array(SCANNET_NYU40)[pred])
  assert [int(v) for v in lines[:20]] == SCANNET_NYU40


def test_scannet_txt_refuses_ignore_predictions(tmp_path):
  xyz, pred = _scene(20)
  with pytest.raises(ValueError, match='no NYU40 id'):
    export.export_predictions('scannet', tmp_path, 'scene0707_00', xyz, pred,
                              ['official', 'ply'])
  assert not list(tmp_path.rglob('*'))  # refused before anything was written


# --------------------------------------------------------------------------------------------
# PLY.

@pytest.mark.parametrize('dataset', ['scannet', 'semantickitti', 's3dis', 'synthetic'])
def test_ply_colours_and_labels_read_back(tmp_path, dataset):
  palette = labels.PALETTES[dataset]
  xyz, pred = _scene(len(palette))
  (path,) = export.export_predictions(dataset, tmp_path, 'a_1', xyz, pred, ['ply'])
  assert path == tmp_path / 'ply' / 'a_1.ply'
  cloud = o3d.io.read_point_cloud(str(path))
  assert len(cloud.points) == len(xyz)
  np.testing.assert_allclose(np.asarray(cloud.points), xyz, atol=1e-5)
  want = np.where(pred[:, None] == 255, 128, palette[np.minimum(pred, len(palette) - 1)]) / 255
  np.testing.assert_allclose(np.asarray(cloud.colors), want, atol=1 / 255)
  vertex = ply.read_ply(path)['vertex']
  np.testing.assert_array_equal(vertex['label'], pred)
  assert open(path, 'rb').read(60).startswith(b'ply\nformat binary_little_endian')


def test_ply_without_extra_and_bad_extra(tmp_path):
  xyz, pred = _scene(10)
  path = export.write_coloured_ply(tmp_path / 'x.ply', xyz, pred, labels.SYNTHETIC_PALETTE)
  assert set(ply.read_ply(path)['vertex']) == {'x', 'y', 'z', 'red', 'green', 'blue'}
  with pytest.raises(ValueError, match='reserved'):
    export.write_coloured_ply(tmp_path / 'y.ply', xyz, pred, labels.SYNTHETIC_PALETTE,
                              extra={'red': pred})
  with pytest.raises(ValueError, match='without points'):
    export.write_coloured_ply(tmp_path / 'z.ply', xyz[:0], pred[:0], labels.SYNTHETIC_PALETTE)


# --------------------------------------------------------------------------------------------
# Confusion image.

def test_confusion_image_diagonal_and_empty_row():
  conf = np.diag([5, 3, 0, 7])
  img = export.confusion_image(conf, ['a', 'b', 'c', 'd'], cell=4)
  assert img.shape == (16, 16, 3) and img.dtype == np.uint8
  cells = img[::4, ::4]  # one pixel per cell
  for i in range(4):
    for j in range(4):
      if i == 2:
        assert cells[i, j].tolist() == [128, 128, 128]  # no ground truth
      elif i == j:
        assert cells[i, j].max() < 120 and cells[i, j, 2] > cells[i, j, 0]  # dark blue
      else:
        assert cells[i, j].tolist() == [255, 255, 255]
  assert (img[4:8, 4:8] == img[4, 4]).all()  # each cell is a uniform block


def test_confusion_image_is_row_normalised():
  img = export.confusion_image(np.array([[1, 1], [0, 1000]]), ['a', 'b'], cell=1)
  assert (img[0, 0] == img[0, 1]).all()  # half and half
  assert (img[0, 0] > img[1, 1]).all() and (img[0, 0] < 255).all()
  with pytest.raises(ValueError, match='class names'):
    export.confusion_image(np.eye(3), ['a', 'b'])


# --------------------------------------------------------------------------------------------
# Errors.

def test_length_mismatch_names_the_scene(tmp_path):
  xyz, pred = _scene(19)
  with pytest.raises(ValueError, match='08_000001'):
    export.export_predictions('semantickitti', tmp_path, '08_000001', xyz[:-1], pred,
                              ['official'])


@pytest.mark.parametrize('bad', [19, 254, -1])
def test_bad_class_id(tmp_path, bad):
  xyz, pred = _scene(19)
  pred[5] = bad
  with pytest.raises(ValueError, match=str(bad)):
    export.export_predictions('semantickitti', tmp_path, '08_000001', xyz, pred, ['ply'])
  with pytest.raises(ValueError, match=str(bad)):  # the writer checks on its own too
    export.write_semantickitti_labels(tmp_path, '08_000001', pred)
  assert not list(tmp_path.rglob('*.*'))


def test_unknown_dataset_and_format(tmp_path):
  xyz, pred = _scene(10)
  with pytest.raises(ValueError, match="'kitti360'"):
    export.export_predictions('kitti360', tmp_path, 'a', xyz, pred, ['ply'])
  with pytest.raises(ValueError, match="'las'"):
    export.export_predictions('synthetic', tmp_path, 'a', xyz, pred, ['ply', 'las'])


def test_no_official_format_writes_nothing(tmp_path):
  xyz, pred = _scene(13)
  assert export.export_predictions('s3dis', tmp_path, 'Area_5_office_1', xyz, pred,
                                   'official') == []
  assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------
# Atomic writes.

def test_failed_rename_leaves_no_file(tmp_path, monkeypatch):
  def fail(src, dst):
    raise OSError('simulated crash before the rename')
  monkeypatch.setattr(export.os, 'replace', fail)
  _, pred = _scene(19)
  with pytest.raises(OSError, match='simulated'):
    export.write_semantickitti_labels(tmp_path, '08_000123', pred)
  seq_dir = tmp_path / 'sequences' / '08' / 'predictions'
  assert not (seq_dir / '000123.label').exists()
  assert not list(seq_dir.iterdir())  # the temporary file is removed too


def test_failed_ply_write_keeps_previous_file(tmp_path, monkeypatch):
  xyz, pred = _scene(10)
  path = export.write_coloured_ply(tmp_path / 'a.ply', xyz, pred, labels.SYNTHETIC_PALETTE)
  before = path.read_bytes()

  def half_write(name, cloud, **kwargs):
    Path(name).write_bytes(before[:len(before) // 2])
    raise RuntimeError('simulated crash mid-write')
  monkeypatch.setattr(o3d.t.io, 'write_point_cloud', half_write)
  with pytest.raises(RuntimeError, match='simulated'):
    export.write_coloured_ply(path, xyz, (pred + 1) % 10, labels.SYNTHETIC_PALETTE)
  with pytest.raises(RuntimeError, match='simulated'):
    export.write_coloured_ply(tmp_path / 'b.ply', xyz, pred, labels.SYNTHETIC_PALETTE)
  assert path.read_bytes() == before
  assert not (tmp_path / 'b.ply').exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == ['a.ply']


def test_open3d_reporting_failure_raises(tmp_path, monkeypatch):
  monkeypatch.setattr(o3d.t.io, 'write_point_cloud', lambda *a, **k: False)
  xyz, pred = _scene(10)
  with pytest.raises(OSError, match='open3d could not write'):
    export.write_coloured_ply(tmp_path / 'a.ply', xyz, pred, labels.SYNTHETIC_PALETTE)
  assert not list(tmp_path.iterdir())


def test_partial_write_through_helper_leaves_no_file(tmp_path):
  def partial(tmp):
    tmp.write_bytes(b'\0' * 8)
    raise KeyboardInterrupt  # not an Exception: the clean-up must still run
  with pytest.raises(KeyboardInterrupt):
    files.atomic_write(tmp_path / 'x.label', partial)
  assert not list(tmp_path.iterdir())

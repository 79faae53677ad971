import logging

import numpy as np
import pytest

from ws3d_jax.data import s3dis
from ws3d_jax.data.labels import S3DIS_CLASSES


def _rows(n, seed):
  rng = np.random.default_rng(seed)
  return np.concatenate([rng.uniform(0, 5, (n, 3)).round(3), rng.integers(0, 256, (n, 3))], 1)


def _write_annotation(path, rows, corrupt_lines=()):
  """Writes rows as the raw release does ("%.3f %.3f %.3f %d %d %d"), plus corrupt lines."""
  lines = [f'{x:.3f} {y:.3f} {z:.3f} {int(r)} {int(g)} {int(b)}' for x, y, z, r, g, b in rows]
  for at, line in corrupt_lines:
    lines.insert(at, line)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(('\n'.join(lines) + '\n').encode('latin-1'))


ROOM = {  # file stem -> (rows, seed)
    'ceiling_1': 40, 'floor_1': 50, 'wall_1': 30, 'wall_2': 30, 'chair_1': 10, 'chair_2': 12,
    'chair_10': 9, 'table_1': 20, 'stairs_1': 8,
}


@pytest.fixture
def s3dis_root(tmp_path):
  room = tmp_path / 'Area_5' / 'hallway_6' / 'Annotations'
  for k, (stem, n) in enumerate(ROOM.items()):
    corrupt = []
    if stem == 'ceiling_1':  # the known defect of the raw release: a stray control byte
      corrupt = [(5, '1.230 4.56\x10 2.340 100 100 100'), (9, '1.0 2.0 3.0 4 5')]
    _write_annotation(room / f'{stem}.txt', _rows(n, k), corrupt)
  (tmp_path / 'Area_5' / 'hallway_6' / 'hallway_6.txt').write_text('')  # unused room file
  _write_annotation(tmp_path / 'Area_1' / 'office_1' / 'Annotations' / 'board_1.txt', _rows(5, 9))
  (tmp_path / 'Area_1' / 'Area_1_alignmentAngle.txt').write_text('## office_1 0\n')
  return tmp_path


def test_list_rooms_and_areas(s3dis_root):
  assert s3dis.list_rooms(s3dis_root) == ['Area_1_office_1', 'Area_5_hallway_6']
  assert s3dis.list_rooms(s3dis_root, s3dis.split_areas('train')) == ['Area_1_office_1']
  assert s3dis.list_rooms(s3dis_root, s3dis.split_areas('validation')) == ['Area_5_hallway_6']
  assert s3dis.split_areas('train') == (1, 2, 3, 4, 6)


def test_room_labels_instances_and_corrupt_rows(s3dis_root, caplog):
  with caplog.at_level(logging.WARNING):
    scene = s3dis.read_room(s3dis_root, 'Area_5_hallway_6')
  assert 'ceiling_1.txt: skipped 2 corrupt rows' in caplog.text
  assert scene['scene_id'] == 'Area_5_hallway_6'
  n = sum(ROOM.values())
  assert scene['xyz'].shape == (n, 3) and scene['features'].shape == (n, 3)
  assert scene['features'].max() <= 1 and scene['features'].min() >= 0

  expected = np.zeros(len(S3DIS_CLASSES), int)
  for stem, rows in ROOM.items():
    name = stem.rsplit('_', 1)[0]
    expected[S3DIS_CLASSES.index('clutter' if name == 'stairs' else name)] += rows
  np.testing.assert_array_equal(np.bincount(scene['semantic'], minlength=13), expected)
  # One instance per annotation file, ids 1..K, each of one class.
  inst = scene['instance']
  assert inst.min() == 1 and inst.max() == len(ROOM)
  assert sorted(np.bincount(inst)[1:].tolist()) == sorted(ROOM.values())
  for i in range(1, len(ROOM) + 1):
    assert len(np.unique(scene['semantic'][inst == i])) == 1
  # chair_2 comes before chair_10 (numeric order), so it has the smaller id.
  chair_sizes = [np.sum(inst == i) for i in np.unique(inst[scene['semantic'] == 8])]
  assert chair_sizes == [10, 12, 9]


def test_annotation_rows_values(tmp_path):
  rows = _rows(6, 3)
  _write_annotation(tmp_path / 'chair_1.txt', rows, [(2, '0.5 0.5 0.5 1 2 3 junk'),
                                                     (4, 'nan 1 2 3 4 5')])
  parsed, skipped = s3dis.read_annotation_file(tmp_path / 'chair_1.txt')
  assert skipped == 2
  np.testing.assert_allclose(parsed, rows, atol=1e-4)
  _write_annotation(tmp_path / 'clean_1.txt', rows)
  parsed, skipped = s3dis.read_annotation_file(tmp_path / 'clean_1.txt')
  assert skipped == 0 and parsed.dtype == np.float32
  np.testing.assert_allclose(parsed, rows, atol=1e-4)


def test_unreadable_file_empty_room_unknown_class(s3dis_root):
  bad = s3dis_root / 'Area_1' / 'office_1' / 'Annotations' / 'board_1.txt'
  bad.write_bytes(b'\x00\x01garbage\nmore garbage\n')
  with pytest.raises(ValueError, match=f'{bad}: unreadable'):
    s3dis.read_room(s3dis_root, 'Area_1_office_1')
  bad.write_text('')
  with pytest.raises(ValueError, match='office_1/Annotations: empty room'):
    s3dis.read_room(s3dis_root, 'Area_1_office_1')
  bad.unlink()
  with pytest.raises(ValueError, match='office_1/Annotations: empty room'):
    s3dis.read_room(s3dis_root, 'Area_1_office_1')
  _write_annotation(bad.parent / 'piano_1.txt', _rows(3, 0))
  with pytest.raises(ValueError, match="piano_1.txt: unknown S3DIS class name 'piano'"):
    s3dis.read_room(s3dis_root, 'Area_1_office_1')
  scene = s3dis.read_room(s3dis_root, 'Area_1_office_1', unknown_class='clutter')
  assert (scene['semantic'] == S3DIS_CLASSES.index('clutter')).all()
  with pytest.raises(FileNotFoundError, match='Area_2/office_9/Annotations'):
    s3dis.read_room(s3dis_root, 'Area_2_office_9')
  with pytest.raises(ValueError, match='not an S3DIS scene id'):
    s3dis.read_room(s3dis_root, 'office_9')


# --------------------------------------------------------------------------------------------
# mmdetection3d's converted files.

def test_mmdet3d_stub(shared_data):
  stub = shared_data('s3dis_stub')
  scene = s3dis.read_mmdet3d_scene(stub, 'Area_1_office_2')
  points = np.fromfile(stub / 'Area_1_office_2_points.bin', np.float32).reshape(-1, 6)
  sem = np.fromfile(stub / 'Area_1_office_2_semantic_mask.bin', np.int64)
  ins = np.fromfile(stub / 'Area_1_office_2_instance_mask.bin', np.int64)
  assert scene['xyz'].shape == (100, 3)
  np.testing.assert_array_equal(scene['xyz'], points[:, :3])
  np.testing.assert_allclose(scene['features'], points[:, 3:] / 255, atol=1e-6)
  np.testing.assert_array_equal(np.bincount(scene['semantic'], minlength=13),
                                np.bincount(sem, minlength=13))
  pairs = np.unique(np.stack([ins, scene['instance']]), axis=1)
  assert pairs.shape[1] == len(np.unique(ins)) == scene['instance'].max()


def test_mmdet3d_directory_layout_and_bad_ids(tmp_path):
  for kind in ('points', 'semantic_mask', 'instance_mask'):
    (tmp_path / kind).mkdir()
  np.zeros((4, 6), np.float32).tofile(tmp_path / 'points' / 'Area_2_x.bin')
  np.array([0, 1, 12, 13], np.int64).tofile(tmp_path / 'semantic_mask' / 'Area_2_x.bin')
  np.array([0, 1, 1, 2], np.int64).tofile(tmp_path / 'instance_mask' / 'Area_2_x.bin')
  with pytest.raises(ValueError, match=r'semantic_mask/Area_2_x.bin.*13 \(1 points\)'):
    s3dis.read_mmdet3d_scene(tmp_path, 'Area_2_x')
  np.array([0, 1, 12, 2], np.int64).tofile(tmp_path / 'semantic_mask' / 'Area_2_x.bin')
  scene = s3dis.read_mmdet3d_scene(tmp_path, 'Area_2_x')
  assert scene['semantic'].tolist() == [0, 1, 12, 2]
  assert scene['instance'].tolist() == [0, 1, 1, 2]
  np.zeros((3, 6), np.float32).tofile(tmp_path / 'points' / 'Area_2_x.bin')
  with pytest.raises(ValueError, match='semantic_mask/Area_2_x.bin.*4 entries.*3 points'):
    s3dis.read_mmdet3d_scene(tmp_path, 'Area_2_x')

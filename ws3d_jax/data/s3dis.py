"""S3DIS readers.

Official layout (Stanford3dDataset_v1.2_Aligned_Version):
    <root>/Area_<N>/<room>/Annotations/<class>_<k>.txt     rows "x y z r g b", space separated
Each annotation file is one instance of its class. The room's scene id is 'Area_<N>_<room>'.

The raw release has known defects that this reader absorbs:
  * a few rows with a stray non-numeric byte (e.g. Area_5/hallway_6) or a wrong number of
    columns: such rows are skipped, counted and logged; a file none of whose rows parse, or
    a room with no points, raises ValueError naming it;
  * annotation classes outside the 13 ('stairs'): mapped to clutter (labels.S3DIS_CLASS_ALIASES),
    as PointNet, mmdetection3d and Pointcept do. Other unknown names raise ValueError unless
    unknown_class='clutter'.

Second reader: mmdetection3d's converted files (points.bin float32 (N, 6) xyz rgb,
semantic_mask.bin int64 0..12, instance_mask.bin int64, 0 = none).
Area 5 is the validation area.
"""
from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path

import numpy as np

from ws3d_jax.data import common
from ws3d_jax.data.labels import S3DIS_CLASSES, raise_unknown_ids, s3dis_class_id

log = logging.getLogger(__name__)

AREAS = (1, 2, 3, 4, 5, 6)
VALIDATION_AREA = 5
_SCENE_ID = re.compile(r'^(Area_\d+)_(.+)$')


def split_areas(split: str, validation_area: int = VALIDATION_AREA) -> tuple[int, ...]:
  """Areas of 'train' (all but the validation area) or 'validation'."""
  if split == 'train':
    return tuple(a for a in AREAS if a != validation_area)
  if split == 'validation':
    return (validation_area,)
  raise ValueError(f'unknown S3DIS split {split!r}; one of train, validation')


def room_dir(root: str | os.PathLike, scene_id: str) -> Path:
  m = _SCENE_ID.match(scene_id)
  if not m:
    raise ValueError(f'not an S3DIS scene id (want "Area_N_<room>"): {scene_id!r}')
  return Path(root) / m.group(1) / m.group(2)


def list_rooms(root: str | os.PathLike, areas: tuple[int, ...] = AREAS) -> list[str]:
  """Scene ids of the rooms under root in the given areas (absent areas are skipped)."""
  common.require_dir(root, 'S3DIS root')
  ids = []
  for area in areas:
    area_dir = Path(root) / f'Area_{area}'
    if area_dir.is_dir():
      ids.extend(f'Area_{area}_{p.name}' for p in sorted(area_dir.iterdir())
                 if (p / 'Annotations').is_dir())
  return ids


def _parse_rows_slowly(text: str) -> tuple[np.ndarray, int]:
  rows, skipped = [], 0
  for line in text.splitlines():
    parts = line.split()
    if not parts:
      continue
    if len(parts) != 6:
      skipped += 1
      continue
    try:
      rows.append([float(p) for p in parts])
    except ValueError:
      skipped += 1
  return np.asarray(rows, np.float32).reshape(-1, 6), skipped


def read_annotation_file(path: str | os.PathLike) -> tuple[np.ndarray, int]:
  """((N, 6) float32 x y z r g b, number of skipped corrupt rows) of one annotation file."""
  path = common.require_file(path, 'S3DIS annotation')
  # latin-1 never fails to decode, so a stray byte just makes its row unparseable.
  text = path.read_bytes().decode('latin-1')
  if not text.strip():
    return np.zeros((0, 6), np.float32), 0
  try:
    rows, skipped = np.loadtxt(io.StringIO(text), dtype=np.float32, ndmin=2), 0
    if rows.size and rows.shape[1] != 6:
      raise ValueError
  except ValueError:  # corrupt rows: parse line by line, skipping them
    rows, skipped = _parse_rows_slowly(text)
  rows = rows.reshape(-1, 6)
  finite = np.isfinite(rows).all(axis=1)
  skipped += int((~finite).sum())
  rows = rows[finite]
  if skipped and not len(rows):
    raise ValueError(f'{path}: unreadable, none of its {skipped} rows is "x y z r g b"')
  if skipped:
    log.warning('%s: skipped %d corrupt rows (kept %d)', path, skipped, len(rows))
  return rows, skipped


def _annotation_order(path: Path) -> tuple:
  # Instance ids follow class then the numeric k of <class>_<k>.txt (chair_2 before chair_10).
  cls, _, k = path.stem.rpartition('_')
  return (cls, int(k) if k.isdigit() else -1, path.name)


def read_room(root: str | os.PathLike, scene_id: str, unknown_class: str = 'error') -> dict:
  """One room of the official layout as a scene dict (rgb features in 0..1).

  Instance ids are 1..K, one per annotation file. Returns the dict only; the number of
  skipped rows is logged (read_annotation_file returns it).
  """
  anno_dir = common.require_dir(room_dir(root, scene_id) / 'Annotations', 'S3DIS room')
  files = sorted(anno_dir.glob('*.txt'), key=_annotation_order)
  parts, semantic, instance, skipped = [], [], [], 0
  for path in files:
    rows, bad = read_annotation_file(path)
    skipped += bad
    if not len(rows):
      log.warning('%s: empty annotation file, no points', path)
      continue
    cls = s3dis_class_id(path.stem.rpartition('_')[0], path, unknown_class)
    parts.append(rows)
    semantic.append(np.full(len(rows), cls, np.int32))
    instance.append(np.full(len(rows), len(parts), np.int32))
  if not parts:
    raise ValueError(f'{anno_dir}: empty room, no points in {len(files)} annotation files')
  if skipped:
    log.warning('%s: skipped %d corrupt rows in total', scene_id, skipped)
  points = np.concatenate(parts)
  return common.make_scene(scene_id, points[:, :3], points[:, 3:6] / 255.0,
                           np.concatenate(semantic), np.concatenate(instance))


# --------------------------------------------------------------------------------------------
# mmdetection3d's converted layout.

def mmdet3d_paths(data_dir: str | os.PathLike, scene_id: str) -> dict[str, Path]:
  """Either <dir>/{points,semantic_mask,instance_mask}/<scene>.bin (mmdet3d's data root) or
  <dir>/<scene>_{points,semantic_mask,instance_mask}.bin (its flattened test fixtures)."""
  d = Path(data_dir)
  kinds = ('points', 'semantic_mask', 'instance_mask')
  if (d / 'points' / f'{scene_id}.bin').is_file():
    return {k: d / k / f'{scene_id}.bin' for k in kinds}
  return {k: d / f'{scene_id}_{k}.bin' for k in kinds}


def read_mmdet3d_scene(data_dir: str | os.PathLike, scene_id: str) -> dict:
  paths = mmdet3d_paths(data_dir, scene_id)
  raw = np.fromfile(common.require_file(paths['points'], 'S3DIS points'), np.float32)
  if raw.size % 6:
    raise ValueError(f'{paths["points"]}: {raw.size} floats is not a multiple of 6 '
                     '(x y z r g b)')
  points = raw.reshape(-1, 6)
  common.check_coordinates(points[:, :3], paths['points'])
  sem = np.fromfile(common.require_file(paths['semantic_mask'], 'S3DIS labels'), np.int64)
  ins = np.fromfile(common.require_file(paths['instance_mask'], 'S3DIS instances'), np.int64)
  common.check_length(len(sem), len(points), paths['semantic_mask'], 'semantic mask')
  common.check_length(len(ins), len(points), paths['instance_mask'], 'instance mask')
  raise_unknown_ids(sem, (sem >= 0) & (sem < len(S3DIS_CLASSES)), paths['semantic_mask'],
                    'S3DIS semantic')
  instance = common.consecutive_instances(np.maximum(ins, 0))  # mmdet3d: 0 = unannotated
  return common.make_scene(scene_id, points[:, :3], points[:, 3:6] / 255.0,
                           sem.astype(np.int32), instance)

"""SemanticKITTI reader: the official layout

    <root>/sequences/<SS>/velodyne/<NNNNNN>.bin    float32 (N, 4) x, y, z, remission
    <root>/sequences/<SS>/labels/<NNNNNN>.label    uint32 (N,): label & 0xFFFF = raw semantic id,
                                                   label >> 16 = instance id

A scan's scene id is '<SS>_<NNNNNN>' (e.g. '08_000123').
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ws3d_jax.data import common
from ws3d_jax.data.labels import map_semantickitti

SPLIT_SEQUENCES: dict[str, tuple[int, ...]] = {
    'train': (0, 1, 2, 3, 4, 5, 6, 7, 9, 10),
    'validation': (8,),
    'test': tuple(range(11, 22)),
}
LABELLED_SEQUENCES = frozenset(SPLIT_SEQUENCES['train'] + SPLIT_SEQUENCES['validation'])
POINT_BYTES = 16  # 4 float32


def scene_id(sequence: int | str, frame: int | str) -> str:
  return f'{int(sequence):02d}_{int(frame):06d}'


def parse_scene_id(sid: str) -> tuple[int, int]:
  try:
    seq, frame = sid.split('_')
    return int(seq), int(frame)
  except ValueError:
    raise ValueError(f'not a SemanticKITTI scene id (want "SS_NNNNNN"): {sid!r}') from None


def scan_paths(root: str | os.PathLike, sid: str) -> tuple[Path, Path]:
  seq, frame = parse_scene_id(sid)
  seq_dir = Path(root) / 'sequences' / f'{seq:02d}'
  return (seq_dir / 'velodyne' / f'{frame:06d}.bin', seq_dir / 'labels' / f'{frame:06d}.label')


def list_scans(root: str | os.PathLike, split: str) -> list[str]:
  """Scene ids of the split's scans found under root, sorted.

  The root may hold only some of the split's sequences (a partial download); absent
  sequences are skipped. A root without any 'sequences' folder raises MissingFileError.
  """
  if split not in SPLIT_SEQUENCES:
    raise ValueError(f'unknown SemanticKITTI split {split!r}; one of {list(SPLIT_SEQUENCES)}')
  seq_root = common.require_dir(Path(root) / 'sequences', 'SemanticKITTI root')
  ids = []
  for seq in SPLIT_SEQUENCES[split]:
    velodyne = seq_root / f'{seq:02d}' / 'velodyne'
    if velodyne.is_dir():
      ids.extend(scene_id(seq, p.stem) for p in sorted(velodyne.glob('*.bin')))
  return ids


def read_points(path: str | os.PathLike) -> np.ndarray:
  """(N, 4) float32 x, y, z, remission of one .bin; truncated or NaN scans raise ValueError."""
  path = common.require_file(path, 'SemanticKITTI scan')
  raw = np.fromfile(path, dtype=np.uint8)
  if raw.size % POINT_BYTES:
    raise ValueError(f'{path}: truncated scan, {raw.size} bytes is not a multiple of '
                     f'{POINT_BYTES} (4 float32 per point)')
  if raw.size == 0:
    raise ValueError(f'{path}: empty scan (0 points)')
  points = raw.view('<f4').reshape(-1, 4)
  common.check_coordinates(points, path)
  return points


def read_labels(path: str | os.PathLike, num_points: int,
                learning_map: Mapping[int, int] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
  """(semantic training ids, instance ids 1..K) of one .label file."""
  path = common.require_file(path, 'SemanticKITTI labels of a labelled sequence')
  raw = np.fromfile(path, dtype=np.uint8)
  if raw.size % 4:
    raise ValueError(f'{path}: {raw.size} bytes is not a multiple of 4 (uint32 labels)')
  label = raw.view('<u4')
  common.check_length(len(label), num_points, path, 'label file')
  semantic = map_semantickitti(label & 0xFFFF, path, learning_map)
  # Instance ids are numbered per class within a sequence, so the full 32-bit label
  # (class + instance) is the key that names one object of the scan.
  keys = np.where((label >> 16) > 0, label, 0)
  return semantic, common.consecutive_instances(keys)


def read_scan(root: str | os.PathLike, sid: str, with_labels: bool | None = None,
              learning_map: Mapping[int, int] | None = None) -> dict:
  """One scan as a scene dict (features = remission, (N, 1)).

  with_labels=None reads labels for the labelled sequences (00-10) and none for the test
  sequences (semantic all IGNORE_LABEL, instance 0). A labelled scan without its .label file
  raises MissingFileError (a FileNotFoundError and a ValueError).
  """
  bin_path, label_path = scan_paths(root, sid)
  if with_labels is None:
    with_labels = parse_scene_id(sid)[0] in LABELLED_SEQUENCES
  points = read_points(bin_path)
  semantic = instance = None
  if with_labels:
    semantic, instance = read_labels(label_path, len(points), learning_map)
  return common.make_scene(sid, points[:, :3], points[:, 3:4], semantic, instance)

"""Which scenes a TFDS builder converts, split by split, and how it reads one.

Plain Python on top of the readers (no builder code): the builders in tfds_builders/ turn these into
scene tasks, and the readers here are module-level functions so that a Beam worker that has
ws3d_jax installed can unpickle them.

Rules shared by all data sets:
  * Scenes that are absent from manual_dir (a partial download) are left out and counted in
    the log; a split with no scene present is omitted.
  * train / validation scenes must have labels: a missing label file is an error naming it.
    Test scenes use labels when their label files exist, otherwise they have none (semantic
    all IGNORE_LABEL, instance 0, boundary all False).
  * Split lists in manual_dir override the official splits, one entry per line, '#' starts a
    comment:
        SemanticKITTI  semantickitti_{train,val,test}.txt   sequences ('08') or scans ('08_000123')
        ScanNet v2     scannetv2_{train,val,test}.txt       scenes ('scene0000_00') (official names)
        S3DIS          s3dis_{train,val,test}.txt           areas ('Area_5') or rooms ('Area_5_office_1')
    A split without a list keeps its official definition.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ws3d_jax.data import common, s3dis, scannet, semantickitti, synthetic
from ws3d_jax.data.tfds_features import SPLITS, override_lists, split_file_name

log = logging.getLogger(__name__)


def _log_absent(dataset: str, split: str, absent: Sequence[str]) -> None:
  if absent:
    log.warning('%s %s: %d listed scenes are not in the download and are left out '
                '(first: %s)', dataset, split, len(absent), ', '.join(absent[:5]))


def _no_points(path: str | os.PathLike) -> ValueError:
  return ValueError(f'{path}: no points')


# The readers choke on a file without points (common.make_scene cannot reshape an empty
# feature array), so the builders check for that first and name the file.

def _check_kitti_nonempty(bin_path: Path) -> None:
  if bin_path.is_file() and bin_path.stat().st_size == 0:
    raise _no_points(bin_path)


def _check_npy_nonempty(vert_path: Path) -> None:
  if vert_path.is_file():
    try:
      n = len(np.load(vert_path, mmap_mode='r'))
    except (ValueError, OSError) as e:
      raise ValueError(f'{vert_path}: not a readable .npy array: {e}') from None
    if n == 0:
      raise _no_points(vert_path)


def _check_ply_nonempty(ply_path: Path) -> None:
  if not ply_path.is_file():
    return
  with open(ply_path, 'rb') as f:
    for _ in range(200):
      line = f.readline()
      words = line.split()
      if not line or words[:1] == [b'end_header']:
        return
      if words[:2] == [b'element', b'vertex'] and len(words) > 2 and words[2] == b'0':
        raise _no_points(ply_path)


# --------------------------------------------------------------------------------------------
# SemanticKITTI.

KITTI_PREFIX = 'semantickitti'


def kitti_root(manual_dir: str | os.PathLike) -> Path:
  """The folder holding sequences/: manual_dir itself or manual_dir/dataset (the zip's)."""
  manual_dir = Path(manual_dir)
  for root in (manual_dir, manual_dir / 'dataset'):
    if (root / 'sequences').is_dir():
      return root
  raise common.MissingFileError(2, 'missing SemanticKITTI folder sequences/ (looked in '
                                f'{manual_dir} and {manual_dir / "dataset"})',
                                str(manual_dir / 'sequences'))


def _kitti_sequence_scans(root: Path, seq: int) -> list[str]:
  velodyne = root / 'sequences' / f'{seq:02d}' / 'velodyne'
  return [semantickitti.scene_id(seq, p.stem) for p in sorted(velodyne.glob('*.bin'))]


def kitti_scenes(manual_dir: str | os.PathLike) -> dict[str, list[str]]:
  """{split: sorted scan ids} of the official split, or of semantickitti_*.txt overrides."""
  root = kitti_root(manual_dir)
  lists = override_lists(Path(manual_dir), KITTI_PREFIX)
  out = {}
  for split in SPLITS:
    if split not in lists:
      out[split] = semantickitti.list_scans(root, split)
      continue
    ids, absent = [], []
    for entry in lists[split]:
      if re.fullmatch(r'\d+', entry):
        scans = _kitti_sequence_scans(root, int(entry))
        ids += scans
        if not scans:
          absent.append(f'sequence {entry}')
      elif re.fullmatch(r'\d+_\d+', entry):
        sid = semantickitti.scene_id(*semantickitti.parse_scene_id(entry))
        if semantickitti.scan_paths(root, sid)[0].is_file():
          ids.append(sid)
        else:
          absent.append(sid)
      else:
        raise ValueError(f'{Path(manual_dir) / split_file_name(KITTI_PREFIX, split)}: '
                         f'{entry!r} is neither a sequence ("08") nor a scan ("08_000123")')
    _log_absent('SemanticKITTI', split, absent)
    out[split] = sorted(set(ids))
  return out


def read_kitti(root: str, sid: str, split: str) -> dict:
  """One scan; labels required except in the test split (there: used when present)."""
  with_labels = True
  if split == 'test':
    with_labels = semantickitti.scan_paths(root, sid)[1].is_file()
  _check_kitti_nonempty(semantickitti.scan_paths(root, sid)[0])
  return semantickitti.read_scan(root, sid, with_labels=with_labels)


# --------------------------------------------------------------------------------------------
# ScanNet v2.

SCANNET_PREFIX = 'scannetv2'  # the official file names: scannetv2_train.txt, ...


def scannet_layout(manual_dir: str | os.PathLike) -> dict:
  """{'layout': 'raw', 'scans': dir, 'scans_test': dir} or {'layout': 'npy', 'npy': dir}.

  raw: manual_dir/scans/<scene>/ (and manual_dir/scans_test/<scene>/ for the test scenes).
  npy: manual_dir/scannet_instance_data/*_vert.npy, or *_vert.npy in manual_dir itself.
  """
  manual_dir = Path(manual_dir)
  if (manual_dir / 'scans').is_dir() or (manual_dir / 'scans_test').is_dir():
    return {'layout': 'raw', 'scans': manual_dir / 'scans', 'scans_test': manual_dir / 'scans_test'}
  for d in (manual_dir / 'scannet_instance_data', manual_dir):
    if d.is_dir() and next(d.glob('*_vert.npy'), None) is not None:
      return {'layout': 'npy', 'npy': d}
  raise common.MissingFileError(
      2, 'no ScanNet data: want the official layout (scans/<scene>/...) or the preprocessed '
         f'one (scannet_instance_data/<scene>_vert.npy) in {manual_dir}', str(manual_dir))


def _scannet_present(layout: dict, sid: str, split: str) -> bool:
  if layout['layout'] == 'npy':
    return (layout['npy'] / f'{sid}_vert.npy').is_file()
  dirs = [layout['scans_test'], layout['scans']] if split == 'test' else [layout['scans']]
  return any((d / sid).is_dir() for d in dirs)


def scannet_scenes(manual_dir: str | os.PathLike,
                   default_list_dirs: Iterable[str | os.PathLike] = ()) -> dict[str, list[str]]:
  """{split: scene ids present} of the split lists (manual_dir first, then the defaults)."""
  layout = scannet_layout(manual_dir)
  out = {}
  for split in SPLITS:
    try:
      listed = scannet.read_split(split, manual_dir, default_dirs=tuple(default_list_dirs))
    except FileNotFoundError:
      log.warning('ScanNet: no %s list in %s or the defaults; %s split left out',
                  scannet.SPLIT_FILES[split], manual_dir, split)
      continue
    present = [s for s in listed if _scannet_present(layout, s, split)]
    _log_absent('ScanNet', split, [s for s in listed if s not in set(present)])
    out[split] = sorted(set(present))
  return out


def read_scannet(manual_dir: str, sid: str, split: str) -> dict:
  layout = scannet_layout(manual_dir)
  if layout['layout'] == 'npy':
    d = layout['npy']
    with_labels = split != 'test' or (d / f'{sid}_sem_label.npy').is_file()
    _check_npy_nonempty(d / f'{sid}_vert.npy')
    return scannet.read_npy_scene(d, sid, with_labels=with_labels)
  scans = layout['scans']
  if split == 'test' and (layout['scans_test'] / sid).is_dir():
    scans = layout['scans_test']
  with_labels = split != 'test' or scannet.raw_paths(scans, sid)['labels'].is_file()
  _check_ply_nonempty(scannet.raw_paths(scans, sid)['mesh'])
  return scannet.read_raw_scene(scans, sid, with_labels=with_labels)


# --------------------------------------------------------------------------------------------
# S3DIS.

S3DIS_PREFIX = 's3dis'
S3DIS_RELEASE_DIR = 'Stanford3dDataset_v1.2_Aligned_Version'


def s3dis_root(manual_dir: str | os.PathLike) -> Path:
  """The folder holding Area_N/: manual_dir or manual_dir/Stanford3dDataset_v1.2_Aligned_Version."""
  manual_dir = Path(manual_dir)
  for root in (manual_dir, manual_dir / S3DIS_RELEASE_DIR):
    if root.is_dir() and any(root.glob('Area_*')):
      return root
  raise common.MissingFileError(2, 'no S3DIS Area_N folders (looked in '
                                f'{manual_dir} and {manual_dir / S3DIS_RELEASE_DIR})',
                                str(manual_dir))


def s3dis_scenes(manual_dir: str | os.PathLike,
                 validation_area: int = s3dis.VALIDATION_AREA) -> dict[str, list[str]]:
  """{split: room ids}: train = the other areas, validation = validation_area, no test
  split; s3dis_*.txt lists in manual_dir override (areas or rooms)."""
  root = s3dis_root(manual_dir)
  lists = override_lists(Path(manual_dir), S3DIS_PREFIX)
  out = {}
  for split in SPLITS:
    if split not in lists:
      if split != 'test':
        out[split] = s3dis.list_rooms(root, s3dis.split_areas(split, validation_area))
      continue
    ids, absent = [], []
    for entry in lists[split]:
      m = re.fullmatch(r'Area_(\d+)', entry)
      if m:
        rooms = s3dis.list_rooms(root, (int(m.group(1)),))
        ids += rooms
        if not rooms:
          absent.append(entry)
      elif re.fullmatch(r'Area_\d+_.+', entry):
        if (s3dis.room_dir(root, entry) / 'Annotations').is_dir():
          ids.append(entry)
        else:
          absent.append(entry)
      else:
        raise ValueError(f'{Path(manual_dir) / split_file_name(S3DIS_PREFIX, split)}: '
                         f'{entry!r} is neither an area ("Area_5") nor a room '
                         '("Area_5_office_1")')
    _log_absent('S3DIS', split, absent)
    out[split] = sorted(set(ids))
  return out


def read_s3dis(root: str, sid: str) -> dict:
  return s3dis.read_room(root, sid)


# --------------------------------------------------------------------------------------------
# Synthetic rooms.

def synthetic_scenes(num_train: int, num_val: int, room_seed: int = 0) -> dict[str, list[str]]:
  return synthetic.make_split_scene_ids(num_train, num_val, room_seed)


def read_synthetic(sid: str, num_points: int) -> dict:
  return synthetic.read_scene(sid, num_points)

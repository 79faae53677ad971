"""ScanNet v2 readers for two layouts.

(a) The widely used preprocessed .npy layout (mmdetection3d / votenet `scannet_instance_data`):
    <scene>_vert.npy (N, 6) xyz + rgb 0..255, <scene>_sem_label.npy NYU40 ids,
    <scene>_ins_label.npy instance ids (0 = none).
(b) The official raw layout:
    scans/<scene>/<scene>_vh_clean_2.ply                  mesh vertices x y z red green blue
    scans/<scene>/<scene>_vh_clean_2.labels.ply           vertex property `label` = NYU40 id
    scans/<scene>/<scene>_vh_clean_2.0.010000.segs.json   {"segIndices": [segment per vertex]}
    scans/<scene>/<scene>.aggregation.json                {"segGroups": [{"objectId",
                                                            "segments", "label", ...}]}
Both give semantic training ids 0..19 (NYU40 ids outside the 20 benchmark classes -> ignore)
and instance ids 1..K (0 = none); features are rgb scaled to 0..1.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from ws3d_jax.data import common
from ws3d_jax.data.labels import map_nyu40
from ws3d_jax.data.ply import read_ply

log = logging.getLogger(__name__)

SPLIT_FILES = {
    'train': 'scannetv2_train.txt',
    'validation': 'scannetv2_val.txt',
    'test': 'scannetv2_test.txt',
}
# Official split lists shipped with the package, if the project chooses to ship them
# (ScanNet/Tasks/Benchmark/scannetv2_*.txt); a user's manual_dir always takes precedence.
PACKAGE_SPLIT_DIR = Path(__file__).resolve().parent / 'splits' / 'scannet'


# --------------------------------------------------------------------------------------------
# Split lists.

def read_split(split: str, manual_dir: str | os.PathLike | None = None,
               default_dirs: Iterable[str | os.PathLike] = (PACKAGE_SPLIT_DIR,)) -> list[str]:
  """Scene ids of an official split ('train', 'validation', 'test').

  Looks for scannetv2_<split>.txt in manual_dir first (so a user can override the lists),
  then in each of default_dirs.
  """
  if split not in SPLIT_FILES:
    raise ValueError(f'unknown ScanNet split {split!r}; one of {list(SPLIT_FILES)}')
  dirs = ([Path(manual_dir)] if manual_dir is not None else []) + [Path(d) for d in default_dirs]
  candidates = [d / SPLIT_FILES[split] for d in dirs]
  for path in candidates:
    if path.is_file():
      return _read_list(path)
  raise common.MissingFileError(
      2, f'no ScanNet split list {SPLIT_FILES[split]} (looked in: '
         f'{", ".join(map(str, candidates)) or "nowhere"})', SPLIT_FILES[split])


def _read_list(path: Path) -> list[str]:
  names = [line.strip() for line in path.read_text().splitlines()]
  names = [n for n in names if n and not n.startswith('#')]
  if not names:
    raise ValueError(f'{path}: empty scene list')
  return names


# --------------------------------------------------------------------------------------------
# (a) Preprocessed .npy layout.

def list_npy_scenes(data_dir: str | os.PathLike) -> list[str]:
  data_dir = common.require_dir(data_dir, 'ScanNet scannet_instance_data')
  return sorted(p.name[:-len('_vert.npy')] for p in data_dir.glob('*_vert.npy'))


def read_npy_scene(data_dir: str | os.PathLike, scene_id: str,
                   with_labels: bool = True) -> dict:
  """One scene of the preprocessed layout; with_labels=False for scenes without label files."""
  data_dir = Path(data_dir)
  vert_path = common.require_file(data_dir / f'{scene_id}_vert.npy', 'ScanNet vertices')
  vert = np.load(vert_path)
  if vert.ndim != 2 or vert.shape[1] < 6:
    raise ValueError(f'{vert_path}: expected (N, 6) xyz rgb, got shape {vert.shape}')
  xyz = vert[:, :3]
  common.check_coordinates(xyz, vert_path)
  semantic = instance = None
  if with_labels:
    sem_path = common.require_file(data_dir / f'{scene_id}_sem_label.npy', 'ScanNet labels')
    ins_path = common.require_file(data_dir / f'{scene_id}_ins_label.npy', 'ScanNet instances')
    sem, ins = np.load(sem_path), np.load(ins_path)
    common.check_length(len(sem), len(xyz), sem_path, 'semantic label file')
    common.check_length(len(ins), len(xyz), ins_path, 'instance label file')
    semantic = map_nyu40(sem, sem_path)
    instance = common.consecutive_instances(ins)
  return common.make_scene(scene_id, xyz, vert[:, 3:6] / 255.0, semantic, instance)


# --------------------------------------------------------------------------------------------
# (b) Official raw layout.

def raw_paths(scans_dir: str | os.PathLike, scene_id: str) -> dict[str, Path]:
  d = Path(scans_dir) / scene_id
  return {
      'mesh': d / f'{scene_id}_vh_clean_2.ply',
      'labels': d / f'{scene_id}_vh_clean_2.labels.ply',
      'segs': d / f'{scene_id}_vh_clean_2.0.010000.segs.json',
      'aggregation': d / f'{scene_id}.aggregation.json',
  }


def list_raw_scenes(scans_dir: str | os.PathLike) -> list[str]:
  scans_dir = common.require_dir(scans_dir, 'ScanNet scans')
  return sorted(p.name for p in scans_dir.iterdir()
                if (p / f'{p.name}_vh_clean_2.ply').is_file())


def _load_json(path: Path) -> dict:
  common.require_file(path, 'ScanNet annotation')
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f'{path}: not valid JSON: {e}') from None


def read_raw_instances(segs_path: Path, aggregation_path: Path, num_points: int) -> np.ndarray:
  """Instance id per vertex: segGroups (objectId) mapped through the per-vertex segIndices."""
  segs = _load_json(segs_path)
  if 'segIndices' not in segs:
    raise ValueError(f'{segs_path}: no "segIndices"')
  seg_of_vertex = np.asarray(segs['segIndices'], np.int64)
  common.check_length(len(seg_of_vertex), num_points, segs_path, 'segIndices')
  if len(seg_of_vertex) and seg_of_vertex.min() < 0:
    raise ValueError(f'{segs_path}: negative segment ids in segIndices')
  agg = _load_json(aggregation_path)
  if 'segGroups' not in agg:
    raise ValueError(f'{aggregation_path}: no "segGroups"')
  object_of_seg = np.zeros(int(seg_of_vertex.max(initial=0)) + 1, np.int64)
  reused = 0
  for group in agg['segGroups']:
    seg = np.asarray(group['segments'], np.int64)
    seg = seg[(seg >= 0) & (seg < len(object_of_seg))]  # segments of no vertex
    reused += int((object_of_seg[seg] > 0).sum())
    object_of_seg[seg] = int(group['objectId']) + 1  # objectId is 0-based; 0 = no instance
  if reused:
    log.warning('%s: %d segments belong to more than one segGroup; the last group wins',
                aggregation_path, reused)
  return common.consecutive_instances(object_of_seg[seg_of_vertex])


def read_raw_scene(scans_dir: str | os.PathLike, scene_id: str,
                   with_labels: bool = True) -> dict:
  """One scene of the official layout (scans/<scene>/...); test scenes: with_labels=False."""
  paths = raw_paths(scans_dir, scene_id)
  vertex = read_ply(paths['mesh'], ('vertex',))['vertex']
  for prop in ('x', 'y', 'z', 'red', 'green', 'blue'):
    if prop not in vertex:
      raise ValueError(f'{paths["mesh"]}: vertex has no property {prop!r}')
  xyz = np.stack([vertex['x'], vertex['y'], vertex['z']], axis=1)
  common.check_coordinates(xyz, paths['mesh'])
  rgb = np.stack([vertex['red'], vertex['green'], vertex['blue']], axis=1) / 255.0
  semantic = instance = None
  if with_labels:
    labelled = read_ply(common.require_file(paths['labels'], 'ScanNet labels'),
                        ('vertex',))['vertex']
    if 'label' not in labelled:
      raise ValueError(f'{paths["labels"]}: vertex has no property "label"')
    common.check_length(len(labelled['label']), len(xyz), paths['labels'], 'labels.ply')
    semantic = map_nyu40(labelled['label'], paths['labels'])
    instance = read_raw_instances(paths['segs'], paths['aggregation'], len(xyz))
  return common.make_scene(scene_id, xyz, rgb, semantic, instance)

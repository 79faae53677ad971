"""Class lists, colour palettes and raw-id -> training-id maps of every data set.

Every reader in ``ws3d_jax.data`` returns training ids 0..C-1 and a single ignore value,
``IGNORE_LABEL``. The maps below are facts of the benchmarks (copied from the official
configs), so the readers work without the configs; ``load_semantickitti_maps`` reads the
official ``semantic-kitti.yaml`` when a user wants to use their own copy.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from ws3d_jax.constants import IGNORE_LABEL

# --------------------------------------------------------------------------------------------
# SemanticKITTI (19 classes). learning_map / learning_map_inv from the official
# semantic-kitti.yaml (PRBonn/semantic-kitti-api); learning id 0 is "unlabeled" and becomes
# IGNORE_LABEL, learning id k >= 1 becomes training id k - 1.
SEMANTICKITTI_LEARNING_MAP: dict[int, int] = {
    0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 7, 32: 8,
    40: 9, 44: 10, 48: 11, 49: 12, 50: 13, 51: 14, 52: 0, 60: 9, 70: 15, 71: 16, 72: 17,
    80: 18, 81: 19, 99: 0, 252: 1, 253: 7, 254: 6, 255: 8, 256: 5, 257: 5, 258: 4, 259: 5,
}
SEMANTICKITTI_LEARNING_MAP_INV: dict[int, int] = {
    0: 0, 1: 10, 2: 11, 3: 15, 4: 18, 5: 20, 6: 30, 7: 31, 8: 32, 9: 40, 10: 44, 11: 48,
    12: 49, 13: 50, 14: 51, 15: 70, 16: 71, 17: 72, 18: 80, 19: 81,
}
SEMANTICKITTI_CLASSES: tuple[str, ...] = (
    'car', 'bicycle', 'motorcycle', 'truck', 'other-vehicle', 'person', 'bicyclist',
    'motorcyclist', 'road', 'parking', 'sidewalk', 'other-ground', 'building', 'fence',
    'vegetation', 'trunk', 'terrain', 'pole', 'traffic-sign',
)
# RGB (the yaml's color_map is BGR) of the raw id each training class maps back to.
SEMANTICKITTI_PALETTE = np.array([
    (100, 150, 245), (100, 230, 245), (30, 60, 150), (80, 30, 180), (0, 0, 255),
    (255, 30, 30), (255, 40, 200), (150, 30, 90), (255, 0, 255), (255, 150, 255),
    (75, 0, 75), (175, 0, 75), (255, 200, 0), (255, 120, 50), (0, 175, 0), (135, 60, 0),
    (150, 240, 80), (255, 240, 150), (255, 0, 0),
], dtype=np.uint8)

# --------------------------------------------------------------------------------------------
# ScanNet v2 (20 benchmark classes, given as NYU40 ids; any other NYU40 id is ignored).
SCANNET_NYU40_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
SCANNET_CLASSES: tuple[str, ...] = (
    'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window',
    'bookshelf', 'picture', 'counter', 'desk', 'curtain', 'refrigerator', 'shower curtain',
    'toilet', 'sink', 'bathtub', 'otherfurniture',
)
# The palette of the ScanNet benchmark scripts (util.py, create_color_palette).
SCANNET_PALETTE = np.array([
    (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120), (188, 189, 34),
    (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213), (148, 103, 189),
    (196, 156, 148), (23, 190, 207), (247, 182, 210), (219, 219, 141), (255, 127, 14),
    (158, 218, 229), (44, 160, 44), (112, 128, 144), (227, 119, 194), (82, 84, 163),
], dtype=np.uint8)
NYU40_MAX_ID = 40  # 0 = unannotated, 1..40 = NYU40 classes

# --------------------------------------------------------------------------------------------
# S3DIS (13 classes, names as in the Annotations/<class>_<k>.txt file names).
S3DIS_CLASSES: tuple[str, ...] = (
    'ceiling', 'floor', 'wall', 'beam', 'column', 'window', 'door', 'table', 'chair', 'sofa',
    'bookcase', 'board', 'clutter',
)
# The raw release has a few annotation files of classes outside the 13 ("stairs" in Area 2
# and Area 4 among others); the usual practice (PointNet, mmdet3d, Pointcept) maps them to clutter.
S3DIS_CLASS_ALIASES: dict[str, str] = {'stairs': 'clutter'}
# mmdetection3d's S3DIS palette.
S3DIS_PALETTE = np.array([
    (0, 255, 0), (0, 0, 255), (0, 255, 255), (255, 255, 0), (255, 0, 255), (100, 100, 255),
    (200, 200, 100), (170, 120, 200), (255, 0, 0), (200, 100, 100), (10, 200, 100),
    (200, 200, 200), (50, 50, 50),
], dtype=np.uint8)

# --------------------------------------------------------------------------------------------
# Synthetic indoor rooms (ws3d_jax.data.synthetic): a small ScanNet-like class list.
SYNTHETIC_CLASSES: tuple[str, ...] = (
    'floor', 'wall', 'door', 'table', 'chair', 'cabinet', 'sofa', 'bed', 'bookshelf', 'clutter',
)
SYNTHETIC_PALETTE = np.array([
    (152, 223, 138), (174, 199, 232), (214, 39, 40), (255, 152, 150), (188, 189, 34),
    (31, 119, 180), (140, 86, 75), (255, 187, 120), (148, 103, 189), (82, 84, 163),
], dtype=np.uint8)

CLASSES: dict[str, tuple[str, ...]] = {
    'semantickitti': SEMANTICKITTI_CLASSES,
    'scannet': SCANNET_CLASSES,
    's3dis': S3DIS_CLASSES,
    'synthetic': SYNTHETIC_CLASSES,
}
PALETTES: dict[str, np.ndarray] = {
    'semantickitti': SEMANTICKITTI_PALETTE,
    'scannet': SCANNET_PALETTE,
    's3dis': S3DIS_PALETTE,
    'synthetic': SYNTHETIC_PALETTE,
}


def raise_unknown_ids(raw: np.ndarray, known: np.ndarray, source: str | os.PathLike,
                      what: str) -> None:
  """Raises ValueError listing the raw ids (and their counts) that `known` does not cover."""
  bad = ~known
  if bad.any():
    ids, counts = np.unique(raw[bad], return_counts=True)
    listing = ', '.join(f'{i} ({c} points)' for i, c in zip(ids.tolist(), counts.tolist()))
    raise ValueError(f'{source}: unknown {what} ids: {listing}')


# --------------------------------------------------------------------------------------------
# NYU40 (ScanNet) maps.

def nyu40_to_train_lut() -> np.ndarray:
  """(41,) int32 table: NYU40 id -> ScanNet training id, IGNORE_LABEL for the other ids."""
  lut = np.full(NYU40_MAX_ID + 1, IGNORE_LABEL, np.int32)
  lut[list(SCANNET_NYU40_IDS)] = np.arange(len(SCANNET_NYU40_IDS), dtype=np.int32)
  return lut


def train_to_nyu40_lut() -> np.ndarray:
  """(20,) int32 table: ScanNet training id -> NYU40 id (for benchmark export)."""
  return np.asarray(SCANNET_NYU40_IDS, np.int32)


def map_nyu40(raw: np.ndarray, source: str | os.PathLike = '<array>') -> np.ndarray:
  """NYU40 ids -> ScanNet training ids; ids outside 0..40 raise ValueError naming `source`."""
  raw = np.asarray(raw).astype(np.int64)
  known = (raw >= 0) & (raw <= NYU40_MAX_ID)
  raise_unknown_ids(raw, known, source, 'NYU40')
  return nyu40_to_train_lut()[raw]


# --------------------------------------------------------------------------------------------
# SemanticKITTI maps.

def load_semantickitti_maps(yaml_path: str | os.PathLike
                            ) -> tuple[dict[int, int], dict[int, int]]:
  """(learning_map, learning_map_inv) read from an official semantic-kitti.yaml."""
  import yaml  # only needed here; the embedded maps cover the usual case
  with open(yaml_path) as f:
    cfg = yaml.safe_load(f)
  return ({int(k): int(v) for k, v in cfg['learning_map'].items()},
          {int(k): int(v) for k, v in cfg['learning_map_inv'].items()})


def semantickitti_lut(learning_map: Mapping[int, int] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
  """(lut, known): raw id -> training id (IGNORE_LABEL for learning id 0), and a bool mask
  of the raw ids that the learning map lists."""
  learning_map = SEMANTICKITTI_LEARNING_MAP if learning_map is None else learning_map
  size = max(learning_map) + 1
  lut = np.full(size, IGNORE_LABEL, np.int32)
  known = np.zeros(size, bool)
  for raw, learn in learning_map.items():
    lut[raw] = IGNORE_LABEL if learn == 0 else learn - 1
    known[raw] = True
  return lut, known


def map_semantickitti(raw: np.ndarray, source: str | os.PathLike = '<array>',
                      learning_map: Mapping[int, int] | None = None) -> np.ndarray:
  """Raw SemanticKITTI semantic ids (label & 0xFFFF) -> training ids 0..18 / IGNORE_LABEL."""
  lut, known = semantickitti_lut(learning_map)
  raw = np.asarray(raw).astype(np.int64)
  in_range = raw < len(lut)
  raise_unknown_ids(raw, in_range & known[np.where(in_range, raw, 0)], source,
                    'SemanticKITTI semantic')
  return lut[raw]


def semantickitti_train_to_raw(train_ids: np.ndarray,
                               learning_map_inv: Mapping[int, int] | None = None
                               ) -> np.ndarray:
  """Training ids (0..18, IGNORE_LABEL) -> raw SemanticKITTI ids (for benchmark export)."""
  inv = SEMANTICKITTI_LEARNING_MAP_INV if learning_map_inv is None else learning_map_inv
  lut = np.zeros(IGNORE_LABEL + 1, np.uint32)  # IGNORE_LABEL -> raw 0 ("unlabeled")
  for learn, raw in inv.items():
    if learn > 0:
      lut[learn - 1] = raw
  return lut[np.asarray(train_ids)]


# --------------------------------------------------------------------------------------------
# S3DIS names.

def s3dis_class_id(name: str, source: str | os.PathLike = '<name>',
                   unknown: str = 'error') -> int:
  """Training id of an S3DIS annotation class name.

  Names in S3DIS_CLASS_ALIASES ('stairs') map to their alias. Any other unknown name raises
  ValueError naming `source` (unknown='error') or maps to clutter (unknown='clutter').
  """
  name = S3DIS_CLASS_ALIASES.get(name, name)
  if name in S3DIS_CLASSES:
    return S3DIS_CLASSES.index(name)
  if unknown == 'clutter':
    return S3DIS_CLASSES.index('clutter')
  raise ValueError(f'{source}: unknown S3DIS class name {name!r} '
                   f'(known: {", ".join(S3DIS_CLASSES)}; aliases: {S3DIS_CLASS_ALIASES})')

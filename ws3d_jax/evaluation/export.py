"""Writes predictions in the benchmarks' submission formats, as coloured PLY files, and
renders confusion matrices as images.

Formats (predictions are training ids 0..C-1 of ``ws3d_jax.data.labels``, 255 = ignore):

* SemanticKITTI: ``<root>/sequences/<SS>/predictions/<NNNNNN>.label``, one uint32 per point,
  raw semantic id in the lower 16 bits and instance 0 in the upper 16 bits; the layout and
  encoding that the semantic-kitti-api ``evaluate_semantics.py`` and the CodaLab server read.
  An ignore prediction is written as raw 0 ("unlabeled"); that evaluator counts it as a
  false negative of the point's ground-truth class, never as an error.
* ScanNet: ``<dir>/<scene_id>.txt``, one NYU40 id per vertex and line. ``train_to_nyu40_lut``
  has no entry for the ignore id, so an ignore prediction is refused (ValueError) rather
  than silently written as NYU40 0 ("unannotated"): the benchmark wants a class per vertex.
* S3DIS and the synthetic rooms have no official submission format; only PLY applies.
* PLY: binary, written with open3d's tensor point cloud so that besides the colours it keeps
  a per-vertex ``label`` (the training id) that the legacy ``o3d.geometry.PointCloud`` drops.

Every writer is atomic: it writes a hidden temporary file beside the target and
``os.replace``s it, so a crash never leaves a truncated file under the final name. (A
process killed with SIGKILL can leave the hidden temporary file behind; its name never
contains '.label', which the SemanticKITTI evaluator looks for when it lists predictions.)
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Collection, Mapping

import numpy as np

from ws3d_jax import files
from ws3d_jax.data.labels import (CLASSES, IGNORE_LABEL, PALETTES, SEMANTICKITTI_LEARNING_MAP_INV,
                                  semantickitti_train_to_raw, train_to_nyu40_lut)
from ws3d_jax.data.semantickitti import parse_scene_id

DATASETS = tuple(CLASSES)
FORMATS = ('official', 'ply')
IGNORE_RGB = (128, 128, 128)
_WHITE = np.array([255.0, 255.0, 255.0])
_DARK_BLUE = np.array([8.0, 48.0, 107.0])  # the dark end of matplotlib's 'Blues'
_GREY = np.array(IGNORE_RGB, np.float64)
# Attribute names open3d or the PLY header already use for positions and colours.
_RESERVED_PLY_NAMES = frozenset(
    {'positions', 'colors', 'normals', 'x', 'y', 'z', 'red', 'green', 'blue', 'alpha',
     'nx', 'ny', 'nz'})
_logged_no_official: set[str] = set()
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Helpers.

def _check_ids(values, num_classes: int, what: str) -> np.ndarray:
  """1-D integer array of training ids in 0..num_classes-1 or IGNORE_LABEL, else ValueError."""
  ids = np.asarray(values)
  if ids.ndim != 1:
    raise ValueError(f'{what}: predictions must be a 1-D array, got shape {ids.shape}')
  if ids.dtype.kind not in 'iu':
    raise ValueError(f'{what}: predictions must be integer training ids, got dtype {ids.dtype}')
  ids = ids.astype(np.int64)
  bad = (ids < 0) | ((ids >= num_classes) & (ids != IGNORE_LABEL))
  if bad.any():
    raise ValueError(f'{what}: prediction ids {np.unique(ids[bad])[:10].tolist()} outside '
                     f'0..{num_classes - 1} (and not the ignore id {IGNORE_LABEL})')
  return ids


def check_scene_name(scene_id: str) -> str:
  # The id becomes a file name: a separator would silently write into another folder.
  if not scene_id or '/' in scene_id or os.sep in scene_id or scene_id in ('.', '..'):
    raise ValueError(f'scene id {scene_id!r} is not usable as a file name')
  return scene_id


# --------------------------------------------------------------------------------------------
# SemanticKITTI.

def semantickitti_label_path(root: str | os.PathLike, scene_id: str) -> Path:
  """<root>/sequences/<SS>/predictions/<NNNNNN>.label of a scene id 'SS_NNNNNN'."""
  seq, frame = parse_scene_id(scene_id)
  return Path(root) / 'sequences' / f'{seq:02d}' / 'predictions' / f'{frame:06d}.label'


def write_semantickitti_labels(root: str | os.PathLike, scene_id: str, pred_train_ids,
                               learning_map_inv: Mapping[int, int] | None = None) -> Path:
  """Writes one scan's predictions as the official .label file; returns its path.

  Training id k is written as learning_map_inv[k + 1] (the embedded official map unless
  given), IGNORE_LABEL as raw 0 ("unlabeled"), little-endian uint32 with instance 0.
  """
  inv = SEMANTICKITTI_LEARNING_MAP_INV if learning_map_inv is None else learning_map_inv
  learn_ids = sorted(k for k in inv if k > 0)
  if learn_ids != list(range(1, len(learn_ids) + 1)):
    raise ValueError(f'learning_map_inv must list learning ids 1..C, got {learn_ids}')
  path = semantickitti_label_path(root, scene_id)
  ids = _check_ids(pred_train_ids, len(learn_ids), scene_id)
  raw = semantickitti_train_to_raw(ids, inv).astype('<u4')
  if (raw > 0xFFFF).any():  # the upper 16 bits are the instance id
    raise ValueError(f'{scene_id}: learning_map_inv maps to raw ids above 0xFFFF')
  return files.write_bytes(path, raw.tobytes())


# --------------------------------------------------------------------------------------------
# ScanNet.

def write_scannet_txt(out_dir: str | os.PathLike, scene_id: str, pred_train_ids) -> Path:
  """Writes <out_dir>/<scene_id>.txt, one NYU40 id per vertex and line; returns its path.

  Ignore predictions raise ValueError: ``train_to_nyu40_lut`` has no entry for them, and
  the benchmark expects a class for every vertex.
  """
  lut = train_to_nyu40_lut()
  path = Path(out_dir) / f'{check_scene_name(scene_id)}.txt'
  ids = _check_ids(pred_train_ids, len(lut), scene_id)
  if (ids == IGNORE_LABEL).any():
    raise ValueError(f'{scene_id}: {int((ids == IGNORE_LABEL).sum())} predictions are the '
                     f'ignore id {IGNORE_LABEL}, which has no NYU40 id in the ScanNet export')
  text = ''.join(f'{v}\n' for v in lut[ids].tolist())
  return files.write_bytes(path, text.encode('ascii'))


# --------------------------------------------------------------------------------------------
# PLY.

def _o3d_attribute(name: str, values, n: int) -> np.ndarray:
  """(n, 1) array of a dtype open3d's PLY writer takes (uint8, uint16, int32, float32/64)."""
  if not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', name) or name in _RESERVED_PLY_NAMES:
    raise ValueError(f'extra PLY property name {name!r} is reserved or not an identifier')
  a = np.asarray(values)
  if a.shape != (n,):
    raise ValueError(f'extra PLY property {name!r} has shape {a.shape}, want ({n},)')
  if a.dtype == bool:
    a = a.astype(np.uint8)
  elif a.dtype.kind in 'iu' and a.dtype not in (np.uint8, np.uint16, np.int32):
    info = np.iinfo(np.int32)
    if a.size and (a.min() < info.min or a.max() > info.max):
      raise ValueError(f'extra PLY property {name!r} does not fit int32')
    a = a.astype(np.int32)
  elif a.dtype == np.float16:
    a = a.astype(np.float32)
  elif a.dtype not in (np.uint8, np.uint16, np.int32, np.float32, np.float64):
    raise ValueError(f'extra PLY property {name!r} has unsupported dtype {a.dtype}')
  return np.ascontiguousarray(a[:, None])


def write_coloured_ply(path: str | os.PathLike, xyz, train_ids, palette,
                       extra: Mapping[str, np.ndarray] | None = None) -> Path:
  """Binary PLY of float32 x, y, z and uchar red, green, blue = palette[train_ids]
  (IGNORE_LABEL grey 128), plus one property per `extra` entry ((N,) arrays); returns path.

  open3d cannot write an empty point cloud, so N = 0 raises ValueError.
  """
  import open3d as o3d  # heavy; only this writer needs it (not the trainer's images)
  xyz = np.asarray(xyz)
  if xyz.ndim != 2 or xyz.shape[1] != 3:
    raise ValueError(f'{path}: xyz must have shape (N, 3), got {xyz.shape}')
  if len(xyz) == 0:
    raise ValueError(f'{path}: open3d cannot write a PLY without points')
  palette = np.asarray(palette, np.uint8)
  if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) > IGNORE_LABEL:
    raise ValueError(f'{path}: palette must have shape (C, 3), C < {IGNORE_LABEL}, '
                     f'got {palette.shape}')
  ids = _check_ids(train_ids, len(palette), str(path))
  if len(ids) != len(xyz):
    raise ValueError(f'{path}: {len(ids)} labels for {len(xyz)} points')
  lut = np.full((IGNORE_LABEL + 1, 3), IGNORE_RGB, np.uint8)
  lut[:len(palette)] = palette

  cloud = o3d.t.geometry.PointCloud()
  cloud.point.positions = o3d.core.Tensor(np.ascontiguousarray(xyz, np.float32))
  # uint8 colours are written as uchar exactly (float colours would be rounded by open3d).
  cloud.point.colors = o3d.core.Tensor(np.ascontiguousarray(lut[ids]))
  for name, values in (extra or {}).items():
    setattr(cloud.point, name, o3d.core.Tensor(_o3d_attribute(name, values, len(xyz))))

  def write(tmp: Path) -> None:
    # open3d reports failure by returning False (and a warning), not by raising.
    if not o3d.t.io.write_point_cloud(str(tmp), cloud, write_ascii=False, compressed=False):
      raise OSError(f'open3d could not write {tmp}')
  return files.atomic_write(path, write, keep_suffix=True)


# --------------------------------------------------------------------------------------------
# Confusion matrix image.

def confusion_image(conf: np.ndarray, class_names, cell: int = 12) -> np.ndarray:
  """(C*cell, C*cell, 3) uint8 picture of a (C, C) confusion matrix for TensorBoard.

  Rows are ground truth and columns predictions, both in the order of `class_names` (top to
  bottom, left to right). Each row is normalised to sum 1 and shaded from white (0) to dark
  blue (1); a row without ground-truth points is grey. clu's ``write_images`` takes
  ``img[None]``.
  """
  conf = np.asarray(conf, np.float64)
  if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
    raise ValueError(f'confusion matrix must be square, got shape {conf.shape}')
  if len(class_names) != len(conf):
    raise ValueError(f'{len(class_names)} class names for a {len(conf)}-class confusion matrix')
  if not np.isfinite(conf).all() or (conf < 0).any():
    raise ValueError('confusion matrix must hold finite non-negative counts')
  if int(cell) < 1:
    raise ValueError(f'cell must be at least 1 pixel, got {cell}')
  totals = conf.sum(1, keepdims=True)
  frac = np.divide(conf, totals, out=np.zeros_like(conf), where=totals > 0)
  rgb = _WHITE + frac[..., None] * (_DARK_BLUE - _WHITE)
  rgb[totals[:, 0] == 0] = _GREY
  img = np.rint(rgb).astype(np.uint8)
  return np.repeat(np.repeat(img, int(cell), axis=0), int(cell), axis=1)


# --------------------------------------------------------------------------------------------
# Point clouds for TensorBoard's mesh plugin.

def point_cloud_summaries(tag: str, xyz, train_ids, palette, max_points: int = 20000,
                          seed: int = 0) -> tuple[dict, dict]:
  """(values, metadata) for a MetricWriter's ``write_summaries``: one coloured point cloud in
  the layout of TensorBoard's mesh plugin (a vertex tensor and a colour tensor, each (1, N, 3),
  with the plugin's metadata), as ``tensorboard.plugins.mesh.summary_v2.mesh`` writes it.

  Scenes are subsampled to ``max_points`` (the same points for every call with the same seed
  and size, so a prediction and its ground truth show the same points); ignore ids are grey.
  """
  from tensorboard.plugins.mesh import metadata as mesh_metadata  # noqa: PLC0415 (TensorBoard)
  from tensorboard.plugins.mesh import plugin_data_pb2  # noqa: PLC0415

  xyz = np.asarray(xyz, np.float32)
  ids = np.asarray(train_ids)
  if xyz.ndim != 2 or xyz.shape[1] != 3 or len(ids) != len(xyz):
    raise ValueError(f'{tag}: need xyz (N, 3) and N ids, got {xyz.shape} and {ids.shape}')
  if len(xyz) > max_points:
    keep = np.sort(np.random.default_rng(seed).choice(len(xyz), max_points, replace=False))
    xyz, ids = xyz[keep], ids[keep]
  lut = np.full((256, 3), IGNORE_RGB, np.uint8)
  palette = np.asarray(palette, np.uint8)
  lut[:len(palette)] = palette
  colours = lut[np.clip(ids, 0, 255).astype(np.int64)]
  parts = {plugin_data_pb2.MeshPluginData.VERTEX: xyz[None], plugin_data_pb2.MeshPluginData.COLOR: colours[None]}
  components = mesh_metadata.get_components_bitmask(list(parts))
  values, meta = {}, {}
  for content_type, array in parts.items():
    name = mesh_metadata.get_instance_name(tag, content_type)
    values[name] = array
    meta[name] = mesh_metadata.create_summary_metadata(tag, None, content_type, components, list(array.shape),
                                                       json_config='{}')
  return values, meta


# --------------------------------------------------------------------------------------------
# Dispatcher.

def export_predictions(dataset: str, out_dir: str | os.PathLike, scene_id: str, xyz,
                       pred_train_ids, formats: Collection[str]) -> list[Path]:
  """Writes one scene's predictions in `formats` under out_dir; returns the written paths.

  'official': out_dir/predictions/sequences/SS/predictions/NNNNNN.label (semantickitti),
  out_dir/predictions/<scene_id>.txt (scannet), nothing for s3dis / synthetic (logged once).
  'ply': out_dir/ply/<scene_id>.ply, coloured by the dataset's palette, with the training
  id as a uchar 'label' property.
  """
  if dataset not in DATASETS:
    raise ValueError(f'unknown dataset {dataset!r}; one of {list(DATASETS)}')
  formats = {formats} if isinstance(formats, str) else set(formats)
  unknown = sorted(formats - set(FORMATS))
  if unknown:
    raise ValueError(f'unknown export format(s) {unknown}; known: {list(FORMATS)}')
  xyz = np.asarray(xyz)
  if xyz.ndim != 2 or xyz.shape[1] != 3:
    raise ValueError(f'{scene_id}: xyz must have shape (N, 3), got {xyz.shape}')
  ids = _check_ids(pred_train_ids, len(CLASSES[dataset]), scene_id)
  if len(ids) != len(xyz):
    raise ValueError(f'{scene_id}: {len(ids)} predictions for {len(xyz)} points')
  out_dir = Path(out_dir)
  written = []
  if 'official' in formats:  # first: it refuses some inputs (ScanNet ignore) before any write
    if dataset == 'semantickitti':
      written.append(write_semantickitti_labels(out_dir / 'predictions', scene_id, ids))
    elif dataset == 'scannet':
      written.append(write_scannet_txt(out_dir / 'predictions', scene_id, ids))
    elif dataset not in _logged_no_official:
      _logged_no_official.add(dataset)
      log.info('%s has no official submission format; "official" export writes nothing',
               dataset)
  if 'ply' in formats:
    path = out_dir / 'ply' / f'{check_scene_name(scene_id)}.ply'
    written.append(write_coloured_ply(path, xyz, ids, PALETTES[dataset],
                                      extra={'label': ids.astype(np.uint8)}))
  return written

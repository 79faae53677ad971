"""ScanNet instance segmentation AP, computed as the official benchmark script does, and the
benchmark's instance submission format.

Why a re-implementation: the official ``evaluate_semantic_instance.py`` (ScanNet/ScanNet,
BenchmarkScripts/3d_evaluation, with ``util_3d.py``) reads text files from disk and is
Python 2; the trainer needs the same numbers from arrays in memory, scene by scene. Every rule
below is the script's, so that numbers logged here are the numbers the benchmark reports:

* Classes: the 18 ScanNet classes other than wall and floor (training ids 2..19). A ground
  truth instance is a (class, instance id) pair of points whose class is one of them and whose
  instance id is > 0 (the script's ``label * 1000 + instance`` ids, per class in increasing id
  order). Every other point is "void": ignore label, wall, floor and, by this repo's
  convention, instance id 0 (the usual GT export of PointGroup / SoftGroup writes 0 there, and
  the script counts id 0 as void: ``gt_ids // 1000 = 0`` is no valid class).
* ``min_region_size = 100``: ground-truth instances with fewer points are not evaluated (no
  false negative when missed), and predicted masks with fewer points are dropped altogether,
  as the script's ``if num < opt.min_region_sizes[0]: continue`` does. Predictions of a class
  that is no instance class (wall, floor) are dropped too, as the script skips labels that
  are not valid class ids. The distance thresholds (inf / -inf) never filter anything and are
  left out.
* Overlaps ``np.append(np.arange(0.5, 0.95, 0.05), 0.25)``: 0.5, 0.55, ..., 0.9 (nine
  values, 0.95 is not among them) and 0.25. A match needs IoU strictly greater than the
  threshold.
* Matching per threshold and class, scene by scene: for each evaluated ground-truth instance
  in order, its overlapping predictions in prediction order; a prediction already taken by an
  earlier instance is skipped; the first one with IoU > threshold is the true positive, each
  further one adds a false positive with the lower of the two scores while the true positive
  keeps the higher (so a duplicate always counts as a false positive scored at or below its
  true positive, whatever the order). Duplicates are not marked taken (at 0.25 one may still
  match a later instance), exactly as in the script.
  A ground-truth instance without a match is a "hard" false negative.
* Every prediction without IoU > threshold to some ground-truth instance of its class (small
  ones included) is a false positive, unless (void points + points of small ground-truth
  instances of its class) / its size > threshold.
* AP of the precision-recall curve over the unique scores, with an artificial end point
  (precision 1, recall 0), integrated with the script's widths ``convolve(recall, [-0.5, 0,
  0.5])`` (a midpoint rule: one true positive scored below one false positive gives 0.25,
  not 0.5).
* A class without evaluated ground truth in any scene has AP NaN in the script (even with
  predictions) and is left out of the means (``np.nanmean``); a class with ground truth but
  no prediction has AP 0. 'ap' is the mean over classes and the nine thresholds 0.5..0.9,
  'ap50' / 'ap25' the means at 0.5 / 0.25.

Decisions where the script has no answer (both tested):
* A class with ground truth and predictions that are all set aside as void (no true or false
  positive left) makes the script fail (``cumsum(empty)[-1]``); here its AP is 0.0, what
  the curve with only the artificial end point integrates to.
* With no evaluated ground-truth instance at all the script's means are NaN; here they are
  0.0, like ``semantic.summarize`` reports an empty evaluation, and ``classes_evaluated`` is 0
  so a caller can tell "nothing to evaluate" from "found nothing". Per class, NaN is reported
  as None (as in ``semantic.summarize``).

Export: ``<out_dir>/<scene_id>.txt`` with lines ``predicted_masks/<scene_id>_<k:03d>.txt
<NYU40 id> <confidence>`` and one 0/1 per vertex and line in each mask file, the layout the
script's ``read_instance_prediction_file`` reads (mask paths relative to the .txt's folder,
no spaces in names). Every file is written atomically, the masks before the index.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ws3d_jax.data.labels import (IGNORE_LABEL, SCANNET_CLASSES, nyu40_to_train_lut,
                                  train_to_nyu40_lut)
from ws3d_jax import files
from ws3d_jax.evaluation.export import IGNORE_RGB, check_scene_name

# The script's evaluation parameters (same float values as its np.arange, so that an IoU
# lying exactly on a threshold falls on the same side).
OVERLAPS = np.append(np.arange(0.5, 0.95, 0.05), 0.25)
MIN_REGION_SIZE = 100
# ScanNet instance classes: every benchmark class except wall (0) and floor (1).
SCANNET_INSTANCE_CLASSES: tuple[int, ...] = tuple(range(2, len(SCANNET_CLASSES)))
MASK_DIR = 'predicted_masks'

_O50 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.5))[0])
_O25 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.25))[0])
_NOT25 = np.flatnonzero(~np.isclose(OVERLAPS, 0.25))


# --------------------------------------------------------------------------------------------
# Input checks.

def _ids_1d(values, what: str, scene_id: str) -> np.ndarray:
  a = np.asarray(values)
  if a.ndim != 1:
    raise ValueError(f'{scene_id}: {what} must be a 1-D array, got shape {a.shape}')
  if a.size and a.dtype.kind not in 'iu':  # an empty list comes out as float64
    raise ValueError(f'{scene_id}: {what} must be integers, got dtype {a.dtype}')
  return a.astype(np.int64)


def check_predictions(scene_id: str, pred_masks, pred_class, pred_score, num_points: int,
                      num_classes: int = len(SCANNET_CLASSES)
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(masks (P, N) bool, classes (P,) int64, scores (P,) float64) or ValueError naming the
  scene. Masks may be bool or integer (non-zero = inside, as the script reads them), never
  float (probabilities passed by mistake); P = 0 may be given as [] or an empty array."""
  masks = np.asarray(pred_masks)
  if masks.size == 0 and masks.ndim <= 1:
    masks = np.zeros((0, num_points), bool)
  if masks.ndim != 2:
    raise ValueError(f'{scene_id}: pred_masks must have shape (P, N), got {masks.shape}')
  if masks.shape[1] != num_points:
    raise ValueError(f'{scene_id}: pred_masks have {masks.shape[1]} points per mask but the '
                     f'scene has {num_points}')
  if masks.size and masks.dtype.kind not in 'biu':
    raise ValueError(f'{scene_id}: pred_masks must be bool or integer, got dtype {masks.dtype}')
  masks = masks != 0
  num = len(masks)
  classes = _ids_1d(pred_class, 'pred_class', scene_id)
  scores = np.asarray(pred_score)
  if scores.ndim != 1:
    raise ValueError(f'{scene_id}: pred_score must be a 1-D array, got shape {scores.shape}')
  if scores.size and scores.dtype.kind not in 'iuf':
    raise ValueError(f'{scene_id}: pred_score must be numbers, got dtype {scores.dtype}')
  scores = scores.astype(np.float64)
  if len(classes) != num or len(scores) != num:
    raise ValueError(f'{scene_id}: {num} masks but {len(classes)} classes and {len(scores)} '
                     f'scores')
  bad = (classes < 0) | (classes >= num_classes)
  if bad.any():
    raise ValueError(f'{scene_id}: predicted classes {np.unique(classes[bad])[:10].tolist()} '
                     f'outside 0..{num_classes - 1}')
  if not np.isfinite(scores).all():
    raise ValueError(f'{scene_id}: {int((~np.isfinite(scores)).sum())} prediction scores are '
                     f'NaN or infinite')
  return masks, classes, scores


def _check_gt(scene_id: str, gt_semantic, gt_instance, num_classes: int,
              ignore_label: int) -> tuple[np.ndarray, np.ndarray]:
  sem = _ids_1d(gt_semantic, 'gt_semantic', scene_id)
  inst = _ids_1d(gt_instance, 'gt_instance', scene_id)
  if len(sem) != len(inst):
    raise ValueError(f'{scene_id}: gt_semantic has {len(sem)} points, gt_instance {len(inst)}')
  bad = (sem < 0) | ((sem >= num_classes) & (sem != ignore_label))
  if bad.any():
    raise ValueError(f'{scene_id}: ground-truth classes {np.unique(sem[bad])[:10].tolist()} '
                     f'outside 0..{num_classes - 1} (and not the ignore label {ignore_label})')
  if inst.size and inst.min() < 0:
    raise ValueError(f'{scene_id}: negative ground-truth instance ids (0 means no instance)')
  return sem, inst


# --------------------------------------------------------------------------------------------
# AP of one class at one threshold.

def _average_precision(y_true: np.ndarray, y_score: np.ndarray,
                       hard_false_negatives: int) -> float:
  """The script's AP of scored true / false positives plus unmatched ground truth.

  Only called for a class with evaluated ground truth, so positives + hard_false_negatives
  > 0 and recall is defined.
  """
  if len(y_true) == 0:
    return 0.0  # every prediction set aside: the script fails here (see module docstring)
  order = np.argsort(y_score, kind='stable')
  score, true = y_score[order], y_true[order].astype(np.float64)
  # One curve point per unique score t: everything scored >= t counts as detected; ties are
  # thus resolved independently of their order.
  _, first = np.unique(score, return_index=True)
  true_below = np.concatenate([[0.0], np.cumsum(true)])[first]
  tp = true.sum() - true_below
  fp = (len(score) - first) - tp
  fn = true_below + hard_false_negatives
  precision = np.append(tp / (tp + fp), 1.0)  # the artificial end point (recall 0)
  recall = np.append(tp / (tp + fn), 0.0)
  # convolve([r0, r0, r1, ..., rK, 0], [-0.5, 0, 0.5], 'valid'): width of point i is half the
  # recall drop from its left to its right neighbour.
  padded = np.concatenate([recall[:1], recall, [0.0]])
  widths = 0.5 * (padded[:-2] - padded[2:])
  return float(np.dot(precision, widths))


def _match_class(scene: dict, overlap: float, min_size: int
                 ) -> tuple[list[float], list[float], int]:
  """(scores of true positives, scores of false positives, hard false negatives) of one
  class in one scene at one threshold, following the script's greedy loops."""
  gt_size, size, score = scene['gt_size'], scene['pred_size'], scene['pred_score']
  inter, void = scene['inter'], scene['void']
  with np.errstate(invalid='ignore', divide='ignore'):
    iou = inter / (gt_size[None, :] + size[:, None] - inter)
  hit = iou > overlap  # inter = 0 gives IoU 0, never a hit
  small = gt_size < min_size
  taken = np.zeros(len(size), bool)
  tp, fp, hard_fn = [], [], 0
  for g in np.flatnonzero(~small):
    best = None
    for p in np.flatnonzero(inter[:, g] > 0):
      if taken[p] or not hit[p, g]:
        continue
      if best is None:
        best = score[p]
        taken[p] = True
      else:  # a second match: the lower score is a false positive, the TP keeps the higher
        fp.append(min(best, score[p]))
        best = max(best, score[p])
    if best is None:
      hard_fn += 1
    else:
      tp.append(best)
  for p in np.flatnonzero(~hit.any(axis=1)):
    ignored = void[p] + inter[p, small].sum()
    if ignored / size[p] <= overlap:
      fp.append(score[p])
  return tp, fp, hard_fn


# --------------------------------------------------------------------------------------------
# Accumulator.

class InstanceEvaluator:
  """Accumulates scenes and computes ScanNet instance AP / AP50 / AP25 (see module docstring).

  Only per-class counts (sizes, intersections, scores) are kept per scene, not the masks.
  """

  def __init__(self, class_names: Sequence[str] = SCANNET_CLASSES,
               instance_classes: Sequence[int] = SCANNET_INSTANCE_CLASSES,
               min_region_size: int = MIN_REGION_SIZE, ignore_label: int = IGNORE_LABEL):
    self.class_names = tuple(class_names)
    self.instance_classes = tuple(int(c) for c in instance_classes)
    if not self.instance_classes or any(
        c < 0 or c >= len(self.class_names) for c in self.instance_classes):
      raise ValueError(f'instance classes {self.instance_classes} must be non-empty and in '
                       f'0..{len(self.class_names) - 1}')
    if ignore_label < len(self.class_names):
      raise ValueError(f'ignore label {ignore_label} collides with a class id')
    self.min_region_size = int(min_region_size)
    self.ignore_label = int(ignore_label)
    self._scenes: dict[str, dict[int, dict]] = {}

  def __len__(self) -> int:
    return len(self._scenes)

  def add_scene(self, scene_id: str, gt_semantic, gt_instance, pred_masks, pred_class,
                pred_score) -> None:
    """Adds one scene: gt_semantic (N,) training ids (ignore label allowed), gt_instance (N,)
    ids (0 = none), pred_masks (P, N) bool, pred_class (P,) training ids, pred_score (P,)."""
    if not isinstance(scene_id, str) or not scene_id:
      raise ValueError(f'scene id must be a non-empty string, got {scene_id!r}')
    if scene_id in self._scenes:
      raise ValueError(f'{scene_id}: scene added twice')
    num_classes = len(self.class_names)
    sem, inst = _check_gt(scene_id, gt_semantic, gt_instance, num_classes, self.ignore_label)
    masks, classes, scores = check_predictions(scene_id, pred_masks, pred_class, pred_score,
                                               len(sem), num_classes)

    # Ground-truth instances: unique (class, id) pairs, by class then id (the script's
    # np.unique over label * 1000 + id). -1 marks void points.
    in_instance = np.isin(sem, self.instance_classes) & (inst > 0)
    stride = int(inst.max(initial=0)) + 1
    uniq, gt_index = np.unique((sem * stride + inst)[in_instance], return_inverse=True)
    gt_index = gt_index.reshape(-1)
    gt_class = uniq // stride
    gt_size = np.bincount(gt_index, minlength=len(uniq))
    point_gt = np.full(len(sem), -1, np.int64)
    point_gt[in_instance] = gt_index

    # Per prediction: its size, and its points per ground-truth instance (column 0 = void).
    rows, cols = np.nonzero(masks)
    counts = np.bincount(rows * (len(uniq) + 1) + point_gt[cols] + 1,
                         minlength=len(masks) * (len(uniq) + 1)
                         ).reshape(len(masks), len(uniq) + 1)
    pred_size = counts.sum(axis=1)
    # The script drops small masks and labels outside the valid classes before matching.
    keep = (pred_size >= self.min_region_size) & np.isin(classes, self.instance_classes)

    per_class = {}
    for c in self.instance_classes:
      g = np.flatnonzero(gt_class == c)
      p = np.flatnonzero(keep & (classes == c))
      if len(g) or len(p):
        per_class[c] = {
            'gt_size': gt_size[g].astype(np.float64),
            'pred_size': pred_size[p].astype(np.float64),
            'pred_score': scores[p],
            'void': counts[p, 0].astype(np.float64),
            'inter': counts[np.ix_(p, g + 1)].astype(np.float64),
        }
    self._scenes[scene_id] = per_class

  def ap_table(self) -> np.ndarray:
    """(len(instance_classes), len(OVERLAPS)) AP per class and threshold, NaN where the class
    has no evaluated ground truth in any scene."""
    table = np.full((len(self.instance_classes), len(OVERLAPS)), np.nan)
    for ci, c in enumerate(self.instance_classes):
      scenes = [s[c] for s in self._scenes.values() if c in s]
      has_gt = any((s['gt_size'] >= self.min_region_size).any() for s in scenes)
      has_pred = any(len(s['pred_size']) for s in scenes)
      if not has_gt:
        continue  # NaN, even with predictions (the script's rule)
      if not has_pred:
        table[ci] = 0.0
        continue
      for oi, overlap in enumerate(OVERLAPS):
        tps, fps, hard_fn = [], [], 0
        for s in scenes:
          tp, fp, fn = _match_class(s, float(overlap), self.min_region_size)
          tps += tp
          fps += fp
          hard_fn += fn
        y_true = np.array([True] * len(tps) + [False] * len(fps))
        table[ci, oi] = _average_precision(y_true, np.array(tps + fps, np.float64), hard_fn)
    return table

  def result(self) -> dict:
    """{'ap', 'ap50', 'ap25': means over classes with ground truth (0.0 when there is none),
    'per_class': {name: {'ap', 'ap50', 'ap25': float or None (no ground truth),
    'num_gt': evaluated ground-truth instances}}, 'classes_evaluated', 'scenes'}."""
    table = self.ap_table()
    evaluated = ~np.isnan(table[:, 0])  # NaN rows are NaN at every threshold

    def mean(values: np.ndarray) -> float:
      return float(values[evaluated].mean()) if evaluated.any() else 0.0

    per_class = {}
    for ci, c in enumerate(self.instance_classes):
      num_gt = sum(int((s[c]['gt_size'] >= self.min_region_size).sum())
                   for s in self._scenes.values() if c in s)
      row = table[ci]
      per_class[self.class_names[c]] = {
          'ap': None if not evaluated[ci] else float(row[_NOT25].mean()),
          'ap50': None if not evaluated[ci] else float(row[_O50]),
          'ap25': None if not evaluated[ci] else float(row[_O25]),
          'num_gt': num_gt,
      }
    return {
        'ap': mean(table[:, _NOT25].mean(axis=1)),
        'ap50': mean(table[:, _O50]),
        'ap25': mean(table[:, _O25]),
        'per_class': per_class,
        'classes_evaluated': int(evaluated.sum()),
        'scenes': len(self._scenes),
    }


def format_table(result: dict) -> str:
  """Per-class AP / AP50 / AP25 table for the log, in percent."""
  names = list(result['per_class'])
  width = max([len(n) for n in names] + [4])

  def pct(v) -> str:
    return '  n/a' if v is None or (isinstance(v, float) and math.isnan(v)) else f'{100 * v:5.1f}'

  lines = [f'{"class":<{width}}    AP  AP50  AP25    GT']
  for name, r in result['per_class'].items():
    lines.append(f'{name:<{width}} {pct(r["ap"])} {pct(r["ap50"])} {pct(r["ap25"])} '
                 f'{r.get("num_gt", 0):5d}')
  lines.append(f'{"mean":<{width}} {pct(result["ap"])} {pct(result["ap50"])} '
               f'{pct(result["ap25"])}   (over {result["classes_evaluated"]} classes with '
               f'ground truth, {result["scenes"]} scenes)')
  return '\n'.join(lines)


# --------------------------------------------------------------------------------------------
# ScanNet benchmark instance format.

def _check_file_scene_id(scene_id: str) -> str:
  check_scene_name(scene_id)
  # The script splits each line on ' ': a blank in a mask path would break the line.
  if re.search(r'\s', scene_id):
    raise ValueError(f'scene id {scene_id!r} contains white space, which the ScanNet '
                     f'instance format cannot hold')
  return scene_id


def write_scannet_instances(out_dir: str | os.PathLike, scene_id: str, pred_masks, pred_class,
                            pred_score) -> Path:
  """Writes <out_dir>/<scene_id>.txt and its masks under <out_dir>/predicted_masks/; returns
  the .txt path. Classes are training ids 0..19 (written as NYU40 ids), scores with four
  decimals. Masks are written first and the index last, each atomically, so a crash never
  leaves an index that names a missing or half-written mask. Mask files of an earlier run
  with more instances stay behind, unreferenced (the evaluator only reads listed masks)."""
  _check_file_scene_id(scene_id)
  lut = train_to_nyu40_lut()
  masks = np.asarray(pred_masks)
  num_points = masks.shape[1] if masks.ndim == 2 else 0
  masks, classes, scores = check_predictions(scene_id, masks, pred_class, pred_score,
                                             num_points, len(lut))
  out_dir = Path(out_dir)
  lines = []
  for k, (mask, c, s) in enumerate(zip(masks, classes, scores)):
    rel = f'{MASK_DIR}/{scene_id}_{k:03d}.txt'
    text = '\n'.join(np.where(mask, '1', '0').tolist()) + ('\n' if len(mask) else '')
    files.write_bytes(out_dir / rel, text.encode('ascii'))
    lines.append(f'{rel} {int(lut[c])} {s:.4f}\n')
  return files.write_bytes(out_dir / f'{scene_id}.txt', ''.join(lines).encode('ascii'))


def read_scannet_instances(out_dir: str | os.PathLike, scene_id: str, num_points: int
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(masks (P, N) bool, training ids (P,), scores (P,)) of <out_dir>/<scene_id>.txt, read
  as the script's read_instance_prediction_file / load_ids do: three fields split on ' ',
  a relative mask path resolved against the .txt's folder and lying inside out_dir, the label
  as int(float(.)), non-zero mask lines inside. NYU40 ids outside the 20 classes raise."""
  out_dir = Path(out_dir)
  index = out_dir / f'{_check_file_scene_id(scene_id)}.txt'
  root = os.path.abspath(out_dir)
  to_train = nyu40_to_train_lut()
  masks, classes, scores = [], [], []
  for n, line in enumerate(index.read_text().splitlines(), 1):
    parts = line.split(' ')
    if len(parts) != 3:
      raise ValueError(f'{index}:{n}: expected "<mask path> <label id> <confidence>"')
    if os.path.isabs(parts[0]):
      raise ValueError(f'{index}:{n}: mask path must be relative')
    mask_file = os.path.abspath(os.path.join(index.parent, parts[0]))
    if os.path.commonpath([mask_file, root]) != root:
      raise ValueError(f'{index}:{n}: mask {parts[0]} lies outside {out_dir}')
    label = int(float(parts[1]))
    if not 0 <= label < len(to_train) or to_train[label] == IGNORE_LABEL:
      raise ValueError(f'{index}:{n}: NYU40 id {label} is none of the ScanNet classes')
    mask = np.array(Path(mask_file).read_text().splitlines(), dtype=np.int64)
    if len(mask) != num_points:
      raise ValueError(f'{mask_file}: {len(mask)} lines for {num_points} vertices')
    masks.append(mask != 0)
    classes.append(int(to_train[label]))
    scores.append(float(parts[2]))
  return (np.array(masks, bool).reshape(len(masks), num_points), np.array(classes, np.int64),
          np.array(scores, np.float64))


def instance_of_points(pred_masks, pred_score) -> np.ndarray:
  """(N,) index of the highest-scoring mask containing each point, -1 where none does (ties
  go to the lower index)."""
  masks = np.asarray(pred_masks, bool)
  scores = np.asarray(pred_score, np.float64)
  if masks.ndim != 2 or scores.shape != (len(masks),):
    raise ValueError(f'pred_masks {masks.shape} and pred_score {scores.shape} do not match')
  order = np.argsort(-scores, kind='stable')
  if not len(order):
    return np.full(masks.shape[1], -1, np.int64)
  best = order[np.argmax(masks[order], axis=0)]
  return np.where(masks.any(axis=0), best, -1)


def instance_palette(num: int, seed: int = 0) -> np.ndarray:
  """(num, 3) uint8 colours, the same for the same seed; kept away from black and grey-ish
  dark values so that instances stand out from the grey of unassigned points."""
  return np.random.default_rng(seed).integers(40, 256, (num, 3)).astype(np.uint8)


def write_instance_ply(path: str | os.PathLike, xyz, pred_masks, pred_score,
                       seed: int = 0) -> Path:
  """Binary PLY of the points coloured by their highest-scoring instance (instance_palette),
  grey where no instance holds them, with an int32 'instance' property (-1 = none)."""
  import open3d as o3d  # heavy; only this writer needs it
  xyz = np.asarray(xyz)
  if xyz.ndim != 2 or xyz.shape[1] != 3:
    raise ValueError(f'{path}: xyz must have shape (N, 3), got {xyz.shape}')
  if len(xyz) == 0:
    raise ValueError(f'{path}: open3d cannot write a PLY without points')
  masks = np.asarray(pred_masks)
  masks, _, scores = check_predictions(str(path), masks, np.zeros(len(masks), np.int64),
                                       pred_score, len(xyz), 1)
  inst = instance_of_points(masks, scores)
  palette = np.concatenate([instance_palette(len(masks), seed),
                            np.array([IGNORE_RGB], np.uint8)])
  cloud = o3d.t.geometry.PointCloud()
  cloud.point.positions = o3d.core.Tensor(np.ascontiguousarray(xyz, np.float32))
  cloud.point.colors = o3d.core.Tensor(np.ascontiguousarray(palette[inst]))  # -1 -> grey
  cloud.point.instance = o3d.core.Tensor(np.ascontiguousarray(inst.astype(np.int32)[:, None]))

  def write(tmp: Path) -> None:
    if not o3d.t.io.write_point_cloud(str(tmp), cloud, write_ascii=False, compressed=False):
      raise OSError(f'open3d could not write {tmp}')
  return files.atomic_write(path, write, keep_suffix=True)

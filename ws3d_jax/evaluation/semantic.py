"""Semantic segmentation metrics, computed as the benchmarks' official evaluators do.

IoU_c = TP_c / (TP_c + FP_c + FN_c) over all evaluated points of the split, points whose ground
truth is the ignore label excluded. mIoU is the mean over every class of the benchmark (the
semantic-kitti-api averages all 19 classes, so a class that never occurs scores 0 there; the
ScanNet script does the same over its 20). Classes absent from both prediction and ground
truth are reported as NaN per class and counted as 0 in the mean, and ``present_miou`` gives
the mean over classes that occur in the ground truth, for small samples.
"""
from __future__ import annotations

import numpy as np


def confusion(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_label: int) -> np.ndarray:
  """(C, C) counts, rows = ground truth, columns = prediction."""
  keep = target != ignore_label
  t, p = target[keep].astype(np.int64), pred[keep].astype(np.int64)
  if t.size and (t.max() >= num_classes or t.min() < 0):
    raise ValueError(f'ground-truth label {int(t.max())} outside 0..{num_classes - 1} (and not the ignore label)')
  if p.size and (p.max() >= num_classes or p.min() < 0):
    raise ValueError(f'predicted label outside 0..{num_classes - 1}')
  return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
  tp = np.diag(conf).astype(np.float64)
  union = conf.sum(0) + conf.sum(1) - tp
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(union > 0, tp / union, np.nan)


def summarize(conf: np.ndarray, class_names) -> dict:
  iou = iou_from_confusion(conf)
  present = conf.sum(1) > 0
  total = conf.sum()
  return {
      'miou': float(np.nan_to_num(iou).mean()),
      'present_miou': float(np.nanmean(iou[present])) if present.any() else 0.0,
      'accuracy': float(np.trace(conf) / total) if total else 0.0,
      'iou': {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou)},
      'points': int(total),
  }


def format_table(summary: dict) -> str:
  """Per-class IoU table for the log."""
  width = max(len(n) for n in summary['iou'])
  lines = [f'{"class":<{width}}   IoU']
  for name, v in summary['iou'].items():
    lines.append(f'{name:<{width}} {"  n/a" if v is None else f"{100 * v:5.1f}"}')
  lines.append(f'{"mIoU":<{width}} {100 * summary["miou"]:5.1f}   (over present classes: '
               f'{100 * summary["present_miou"]:.1f}, accuracy {100 * summary["accuracy"]:.1f})')
  return '\n'.join(lines)

"""The labeled / unlabeled split of the training scenes (METHOD.md, "Labeled / unlabeled split").

Scenes are taken in a seeded order and go to the labeled set until they hold a fraction r of
all training points. The scene that crosses the line is cut by an axis-aligned vertical plane
(x or y, the one that lands closest), placed so that the labeled share is r to within the
points that share one coordinate value (at most 1% of that scene's points off); the part
beyond the plane joins the unlabeled set.
At r = 1 every scene is in both sets. Transductive mode adds evaluation scenes (without
labels) to the unlabeled set.

A split is a JSON-able dict:
    ratio, seed, total_points, labeled_points, achieved_ratio,
    labeled:   [{"scene": id, "cut": null | {"axis", "threshold", "side"}}, ...]
    unlabeled: [{"scene": id, "cut": ...}, ...]
    cut:       null | {"scene", "axis", "threshold", "labeled_side"}   (summary of the cut)
    transductive_scenes: [ids]
An entry's cut keeps the points with xyz[:, axis] < threshold (side "below") or >= threshold
(side "above"); `apply_cut` gives that mask.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ws3d_jax import files

SIDES = ('below', 'above')


def apply_cut(xyz: np.ndarray, cut: Mapping | None) -> np.ndarray:
  """Bool mask of the points of a scene that a split entry with this cut keeps."""
  if cut is None:
    return np.ones(len(xyz), bool)
  if cut['side'] not in SIDES:
    raise ValueError(f'cut side must be one of {SIDES}, got {cut["side"]!r}')
  # float64 so that a threshold halfway between two float32 coordinates separates them.
  coord = np.asarray(xyz)[:, int(cut['axis'])].astype(np.float64)
  below = coord < float(cut['threshold'])
  return below if cut['side'] == 'below' else ~below


def _plane_cut(xyz: np.ndarray, num_below: int) -> tuple[int, float, int]:
  """(axis, threshold, points below) of a vertical plane that leaves about num_below points
  below it; the threshold lies halfway between two distinct coordinates.

  A vertical cut (x or y) keeps every height of the scene on both sides, so the labeled part
  holds walls and furniture, not only the floor. The horizontal axis that lands closest wins,
  even when a z cut would land a few points closer (quantised horizontal coordinates often
  cannot hit a count exactly); z is used only when no vertical plane lands within
  ``_CUT_TOLERANCE`` of the scene's points of the target.
  """
  extent = xyz.max(axis=0) - xyz.min(axis=0)
  horizontal = _closest_cut(xyz, num_below, sorted((0, 1), key=lambda a: -extent[a]))
  tolerance = max(_CUT_TOLERANCE * len(xyz), 1)
  if horizontal is not None and abs(horizontal[2] - num_below) <= tolerance:
    return horizontal
  vertical = _closest_cut(xyz, num_below, [2])
  candidates = [c for c in (horizontal, vertical) if c is not None]
  if not candidates:
    raise ValueError('cannot cut a scene whose points all coincide')
  return min(candidates, key=lambda c: abs(c[2] - num_below))


_CUT_TOLERANCE = 0.01  # of the cut scene's points


def _closest_cut(xyz: np.ndarray, num_below: int, axes) -> tuple[int, float, int] | None:
  best = None
  for axis in axes:
    s = np.sort(xyz[:, axis].astype(np.float64))
    gaps = np.flatnonzero(s[1:] > s[:-1]) + 1  # possible counts below a threshold
    if not len(gaps):
      continue
    g = int(gaps[np.argmin(np.abs(gaps - num_below))])
    if best is None or abs(g - num_below) < abs(best[2] - num_below):
      best = (axis, float((s[g - 1] + s[g]) / 2), g)
  return best


def seeded_order(scene_ids: Sequence[str], seed: int) -> list[str]:
  """The fixed scene order of a seed (independent of the order of the input)."""
  ids = sorted(scene_ids)
  return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


def make_split(scene_point_counts: Mapping[str, int], ratio: float, seed: int,
               scene_xyz: Callable[[str], np.ndarray] | None = None,
               transductive_scenes: Sequence[str] = ()) -> dict:
  """The split of the training scenes for label ratio `ratio` in (0, 1].

  scene_xyz(scene_id) -> (N, 3) points is called for the one scene that is cut (only
  needed when ratio < 1).
  """
  if not 0 < ratio <= 1:
    raise ValueError(f'label ratio must be in (0, 1], got {ratio}')
  if not scene_point_counts:
    raise ValueError('no training scenes')
  overlap = set(transductive_scenes) & set(scene_point_counts)
  if overlap:
    raise ValueError(f'transductive scenes are training scenes too: {sorted(overlap)[:5]}')
  order = seeded_order(list(scene_point_counts), seed)
  counts = np.array([int(scene_point_counts[s]) for s in order], np.int64)
  total = int(counts.sum())
  if ratio == 1:
    labeled = [{'scene': s, 'cut': None} for s in order]
    unlabeled = [{'scene': s, 'cut': None} for s in order]
    cut, labeled_points = None, total
  else:
    labeled, unlabeled, cut, labeled_points = _partial_split(
        order, counts, max(1, round(ratio * total)), scene_xyz)
  unlabeled += [{'scene': s, 'cut': None} for s in transductive_scenes]
  return {
      'ratio': float(ratio),
      'seed': int(seed),
      'total_points': total,
      'labeled_points': int(labeled_points),
      'achieved_ratio': labeled_points / total,
      'cut': cut,
      'labeled': labeled,
      'unlabeled': unlabeled,
      'transductive_scenes': list(transductive_scenes),
  }


def _partial_split(order, counts, target, scene_xyz):
  cum_before = np.concatenate([[0], np.cumsum(counts)[:-1]])
  k = int(np.searchsorted(cum_before + counts, target))  # the scene that reaches the target
  labeled = [{'scene': s, 'cut': None} for s in order[:k]]
  unlabeled = [{'scene': s, 'cut': None} for s in order[k + 1:]]
  need, crossing = int(target - cum_before[k]), order[k]
  if need == counts[k]:  # the target falls exactly on a scene boundary
    return labeled + [{'scene': crossing, 'cut': None}], unlabeled, None, target
  if scene_xyz is None:
    raise ValueError(f'scene {crossing} must be cut for the labeled share; pass scene_xyz')
  xyz = np.asarray(scene_xyz(crossing))
  if len(xyz) != counts[k]:
    raise ValueError(f'scene {crossing}: scene_xyz gave {len(xyz)} points, '
                     f'scene_point_counts says {counts[k]}')
  axis, threshold, below = _plane_cut(xyz, need)
  part = {'axis': axis, 'threshold': threshold}
  labeled.append({'scene': crossing, 'cut': {**part, 'side': 'below'}})
  unlabeled.insert(0, {'scene': crossing, 'cut': {**part, 'side': 'above'}})
  cut = {'scene': crossing, **part, 'labeled_side': 'below'}
  return labeled, unlabeled, cut, int(cum_before[k]) + below


def save_split(split: Mapping, path: str | os.PathLike) -> None:
  files.write_json(path, split)


def load_split(path: str | os.PathLike) -> dict:
  split = json.loads(Path(path).read_text())
  missing = {'ratio', 'seed', 'labeled', 'unlabeled'} - set(split)
  if missing:
    raise ValueError(f'{path}: not a label split file, missing {sorted(missing)}')
  return split

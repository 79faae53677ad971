"""The training input pipeline: scenes -> augmented views -> padded, bucketed batches.

    source (random access: a TFDS data source or a list of scene dicts)
      -> seeded shuffle, repeat                                   (grain.MapDataset)
      -> per scene: one augmented view, or two for the unlabeled branch
      -> per batch: voxelize, count, pick the capacity bucket, pad (Batcher)
      -> worker threads, then a background prefetch thread        (grain IterDataset)

A batch is a dict of numpy arrays plus ``caps`` (a hashable sparse.Capacities, passed to the
jitted step as a static argument). With two views, both views share one set of capacities and
one set of region arrays (the views hold the same points, so the same regions).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import grain
import numpy as np

from ws3d_jax import sparse
from ws3d_jax.data.augment import AugmentParams, augment
from ws3d_jax.data.labels import IGNORE_LABEL

VIEW_KEYS = ('coords', 'features', 'voxel_valid', 'point2voxel', 'point_valid')


def subset_scene(scene: dict, keep: np.ndarray) -> dict:
  """The points of a scene where ``keep`` is True, with regions renumbered and their pairs
  filtered (a label-ratio split cuts one scene in two)."""
  out = {k: (v[keep] if isinstance(v, np.ndarray) and v.ndim and len(v) == len(keep) else v)
         for k, v in scene.items()}
  if 'region_id' in scene:
    kept, new_id = np.unique(scene['region_id'][keep], return_inverse=True)
    out['region_id'] = new_id.astype(np.int32)
    lookup = np.full(int(scene['region_id'].max()) + 1, -1, np.int64)
    lookup[kept] = np.arange(len(kept))
    pairs = lookup[scene['region_pairs']] if len(scene['region_pairs']) else np.zeros((0, 2), np.int64)
    ok = (pairs >= 0).all(axis=1)
    out['region_pairs'] = pairs[ok].astype(np.int32)
    for key in ('pair_boundary',):
      if key in scene:
        out[key] = scene[key][ok]
  return out


@dataclasses.dataclass
class Batcher:
  """Turns a list of scene elements into one padded batch.

  An element is a dict with 'views': a list of (xyz, features) pairs (1 or 2), and the
  per-point arrays shared by its views ('semantic', optionally 'region_id' + 'region_pairs'
  + 'pair_boundary').
  """
  voxel_size: float
  profile: sparse.BucketProfile
  num_levels: int = 5

  def __call__(self, elements: Sequence[dict]) -> dict:
    num_views = len(elements[0]['views'])
    names = [e.get('scene_id', f'element {i}') for i, e in enumerate(elements)]
    views = [[sparse.voxelize_scene(*e['views'][v], self.voxel_size, n) for e, n in zip(elements, names)]
             for v in range(num_views)]
    with_regions = 'region_id' in elements[0]
    regions = sum(int(e['region_id'].max()) + 1 for e in elements) if with_regions else 0
    region_pairs = sum(len(e['region_pairs']) for e in elements) if with_regions else 0
    counts = None
    for vox in views:
      c = sparse.count_structure(_batch_coords(vox), sum(len(v.point2voxel) for v in vox), self.num_levels,
                                 regions, region_pairs)
      counts = c if counts is None else counts.merge(c)
    caps = self.profile.plan(counts)

    batch = {'caps': caps, 'scene_id': np.array(names)}
    for v, vox in enumerate(views):
      padded = sparse.collate(vox, caps.voxels[0], caps.points)
      batch[f'view{v}'] = {k: getattr(padded, k) for k in VIEW_KEYS}
    n = counts.points
    batch['labels'] = _pad(np.concatenate([e['semantic'] for e in elements]), caps.points, IGNORE_LABEL)
    batch['point_batch'] = _pad(np.repeat(np.arange(len(elements)), [len(e['semantic']) for e in elements]),
                                caps.points, -1)
    if with_regions:
      batch.update(_batch_regions(elements, caps, n))
    return batch


def _batch_coords(vox) -> np.ndarray:
  return np.concatenate([np.concatenate([np.full((len(v.coords), 1), b, np.int32), v.coords], 1)
                         for b, v in enumerate(vox)])


def _pad(x: np.ndarray, size: int, fill) -> np.ndarray:
  out = np.full((size,) + x.shape[1:], fill, x.dtype)
  out[:len(x)] = x
  return out


def _batch_regions(elements, caps, num_points) -> dict:
  """Region ids made global over the batch (scene offsets); padding points -> caps.regions."""
  offsets = np.cumsum([0] + [int(e['region_id'].max()) + 1 for e in elements])
  region_id = np.concatenate([e['region_id'] + o for e, o in zip(elements, offsets)])
  pairs = np.concatenate([e['region_pairs'].reshape(-1, 2) + o for e, o in zip(elements, offsets)])
  boundary = np.concatenate([e.get('pair_boundary', np.zeros(len(e['region_pairs']), np.float32))
                             for e in elements]).astype(np.float32)
  region_batch = np.repeat(np.arange(len(elements)), np.diff(offsets))
  return {
      'region_id': _pad(region_id.astype(np.int32), caps.points, caps.regions),
      'region_valid': np.arange(caps.regions) < offsets[-1],
      'region_batch': _pad(region_batch.astype(np.int32), caps.regions, -1),
      'region_pairs': _pad(pairs.astype(np.int32), caps.region_pairs, caps.regions),
      'pair_valid': np.arange(caps.region_pairs) < len(pairs),
      'pair_boundary': _pad(boundary, caps.region_pairs, 0.0),
  }


def make_element(scene: dict, rng: np.random.Generator, augment_params: AugmentParams, num_views: int) -> dict:
  """Augmented views of one scene plus the arrays its views share."""
  views = [augment(scene['xyz'], scene['features'], rng, augment_params) for _ in range(num_views)]
  element = {'scene_id': str(scene.get('scene_id', '')), 'views': views, 'semantic': scene['semantic']}
  for key in ('region_id', 'region_pairs', 'pair_boundary'):
    if key in scene:
      element[key] = scene[key]
  return element


def training_stream(source, batch_size: int, seed: int, batcher: Batcher, augment_params: AugmentParams,
                    num_views: int = 1, num_threads: int = 2, prefetch: int = 2):
  """An endless, seeded, prefetched iterator of training batches."""
  if len(source) < batch_size:
    raise ValueError(f'the training set has {len(source)} scenes, fewer than the batch size {batch_size}')
  ds = (grain.MapDataset.source(source).seed(seed).shuffle().repeat()
        .random_map(lambda scene, rng: make_element(scene, rng, augment_params, num_views))
        .batch(batch_size, drop_remainder=True, batch_fn=batcher))
  ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
  return iter(grain.experimental.ThreadPrefetchIterDataset(ds, prefetch_buffer_size=prefetch))

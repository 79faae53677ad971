"""A run's batcher, fitted once to the run's scenes.

The bucket profile (the capacity ladder every batch is padded to) is fitted on one batch of the
run's shape drawn from the first training scenes by id, so runs of one data set at any ratio or
seed share their compiled steps; ``pin`` raises its lowest rung above every batch the run can
draw, so each step compiles once.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ws3d_jax import hosts, sparse
from ws3d_jax.data import pipeline
from ws3d_jax.data.augment import AugmentParams


@dataclasses.dataclass(frozen=True)
class BatchingSpec:
  """What a batcher is fitted with: the voxel size, the augmentation its sample batch is drawn
  with (and its seed), and the bucket ladder's settings (``config.buckets``)."""
  voxel_size: float
  augment: AugmentParams = AugmentParams()
  seed: int = 0
  headroom: float = 1.25
  growth: float = 1.25
  min_voxels: int = 1024
  pin: bool = False


def sample_elements(data, spec: BatchingSpec, labeled_batch: int, unlabeled_batch: int, num_views: int = 2) -> list:
  """One batch of the run's shape (labeled + unlabeled scenes), from the first training scenes
  by id: the same scenes whatever the split."""
  rng = np.random.default_rng(spec.seed)
  branches = [data.labeled] * labeled_batch + [data.unlabeled] * unlabeled_batch
  names = sorted({e['scene'] for e in data.split['labeled'] + data.split['unlabeled']})
  picks = []
  for i, branch in enumerate(branches):
    source, index = branch.lookup[names[i % len(names)]]
    picks.append(dict(source[index], labeled=branch.labeled))
  return [pipeline.make_element(s, rng, spec.augment, num_views) for s in picks]


def fitted_batcher(spec: BatchingSpec, elements: list, chunk_sizes: tuple, share: hosts.Share | None = None,
                   max_proposals: int = 0, pin_branches=()) -> pipeline.Batcher:
  """The batcher of a run: its profile fitted to ``elements`` (one global batch, cut over
  ``share.devices``), with headroom for the rest (bigger batches climb the ladder; each rung
  compiles once), and with ``spec.pin`` raised above every device's shard that ``pin_branches``
  ((source, scenes per device) pairs) can give. It pads this process's shards; no ``share``:
  unsharded batches (no device axis), for one device. ``chunk_sizes``: the network's, per stride
  (``BackboneSpec.chunk_sizes``); the batches carry their kernel maps for it."""
  counter = pipeline.Batcher(spec.voxel_size, None, len(chunk_sizes), num_shards=share.devices if share else None,
                             max_proposals=max_proposals)
  profile = sparse.BucketProfile.from_counts(counter.count(elements), headroom=spec.headroom, growth=spec.growth,
                                             min_voxels=spec.min_voxels)
  if spec.pin and pin_branches:
    profile = pinned(counter, profile, pin_branches, spec)
  return dataclasses.replace(counter.with_profile(profile), num_shards=share.local if share else None,
                             chunk_sizes=tuple(chunk_sizes))


def pinned(counter: pipeline.Batcher, profile: sparse.BucketProfile, branches, spec: BatchingSpec) -> sparse.BucketProfile:
  """``profile`` with its lowest rung above every shard of ``branches``. A shard's scale is at
  most the sum of its scenes' scales, so the bound is each branch's largest scales summed, times
  the headroom for what augmentation changes. Counts every scene of the sources once (host,
  unaugmented)."""
  rng = np.random.default_rng(spec.seed)
  bound = 0.0
  for source, size in branches:
    if not size:
      continue
    labeled = getattr(source, 'labeled', None)
    scales = []
    for i in range(len(source)):
      scene = source[i] if labeled is None else dict(source[i], labeled=labeled)
      scales.append(profile.scale(counter.count([pipeline.make_element(scene, rng, spec.augment, 1)])))
    bound += sum(sorted(scales, reverse=True)[:size])
  return dataclasses.replace(profile, min_voxels=max(profile.min_voxels, int(np.ceil(spec.headroom * bound))))

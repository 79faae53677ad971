"""A run's batcher, fitted once to the run's scenes, and what the steps read from its batches.

The bucket profile (the capacity ladder every batch is padded to) is fitted on one batch of the
run's shape drawn from the first training scenes by id, so runs of one data set at any ratio or
seed share their compiled steps; ``buckets.pin`` raises its lowest rung above every batch the
run can draw, so each step compiles once.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ws3d_jax import hosts, sparse
from ws3d_jax.data import pipeline
from ws3d_jax.data.augment import AugmentParams
from ws3d_jax.losses.targets import Regions, Targets
from ws3d_jax.models import minkunet



def sample_elements(data, config, num_views: int = 2) -> list:
  """One batch of the run's shape (labeled + unlabeled scenes), from the first training scenes
  by id: the same scenes whatever the split."""
  rng = np.random.default_rng(config.seed)
  aug = AugmentParams.from_config(config.data.augment)
  t = config.train
  branches = [data.labeled] * t.labeled_batch + [data.unlabeled] * t.unlabeled_batch
  names = sorted({e['scene'] for e in data.split['labeled'] + data.split['unlabeled']})
  picks = []
  for i, branch in enumerate(branches):
    source, index = branch.lookup[names[i % len(names)]]
    picks.append(dict(source[index], labeled=branch.labeled))
  return [pipeline.make_element(s, rng, aug, num_views) for s in picks]


def fitted_batcher(config, elements: list, share: hosts.Share | None = None, max_proposals: int = 0,
                   pin_branches=(), num_levels: int = 0) -> pipeline.Batcher:
  """The batcher of a run: its profile fitted to ``elements`` (one global batch, cut over
  ``share.devices``), with headroom for the rest (bigger batches climb the ladder; each rung
  compiles once), and with ``buckets.pin`` raised above every device's shard that
  ``pin_branches`` ((source, scenes per device) pairs) can give. It pads this process's shards;
  no ``share``: unsharded batches (no device axis), for one device. ``num_levels``: the strides
  the network reads maps of (default: those of ``model.backbone``)."""
  num_levels = num_levels or minkunet.levels_of(config.model.backbone)
  counter = pipeline.Batcher(config.data.voxel_size, None, num_levels,
                             num_shards=share.devices if share else None, max_proposals=max_proposals)
  b = config.buckets
  profile = sparse.BucketProfile.from_counts(counter.count(elements), headroom=b.headroom, growth=b.growth,
                                             min_voxels=b.min_voxels)
  if b.pin and pin_branches:
    profile = pinned(counter, profile, pin_branches, config)
  return dataclasses.replace(counter.with_profile(profile), num_shards=share.local if share else None)


def pinned(counter: pipeline.Batcher, profile: sparse.BucketProfile, branches, config) -> sparse.BucketProfile:
  """``profile`` with its lowest rung above every shard of ``branches``. A shard's scale is at
  most the sum of its scenes' scales, so the bound is each branch's largest scales summed, times
  the headroom for what augmentation changes. Counts every scene of the sources once (host,
  unaugmented)."""
  rng = np.random.default_rng(config.seed)
  aug = AugmentParams.from_config(config.data.augment)
  bound = 0.0
  for source, size in branches:
    if not size:
      continue
    labeled = getattr(source, 'labeled', None)
    scales = []
    for i in range(len(source)):
      scene = source[i] if labeled is None else dict(source[i], labeled=labeled)
      scales.append(profile.scale(counter.count([pipeline.make_element(scene, rng, aug, 1)])))
    bound += sum(sorted(scales, reverse=True)[:size])
  return dataclasses.replace(profile, min_voxels=max(profile.min_voxels, int(np.ceil(config.buckets.headroom * bound))))


def device_arrays(batch: dict) -> dict:
  """The arrays of a batch that go to the devices (not its capacities or scene names)."""
  return {k: v for k, v in batch.items() if k not in ('caps', 'scene_id')}


def semantic_targets(batch: dict) -> Targets:
  """The losses' targets of a semantic batch: labels, and the regions where the scenes have them."""
  regions = None
  if 'region_id' in batch:
    regions = Regions(id=batch['region_id'], valid=batch['region_valid'], scene=batch['region_batch'],
                      labeled=batch['region_labeled'], pairs=batch['region_pairs'], pair_valid=batch['pair_valid'],
                      pair_boundary=batch['pair_boundary'])
  return Targets(labels=batch['labels'], regions=regions)

"""The training input pipeline: scenes -> augmented views -> padded, bucketed batches.

    source (random access: a TFDS data source or a list of scene dicts)
      -> seeded shuffle, repeat                                   (grain.MapDataset)
      -> per scene: one augmented view, or two for the unlabeled branch
      -> per batch: voxelize, count, pick the capacity bucket, pad (Batcher); the processes of a
         multi-host run pick it together from all their counts (ws3d_jax/hosts.py)
      -> worker threads, then a background prefetch thread        (grain IterDataset)

A batch is a ``Batch`` (a pytree: flax.struct) of numpy arrays, with ``caps`` (a hashable
sparse.Capacities, a static argument of the jitted step) and the scene names as static fields.
With two views, both views share one set of capacities and one set of region arrays (the views
hold the same points, so the same regions).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import grain
import jax
import numpy as np
from flax import struct

from ws3d_jax import hosts, sparse
from ws3d_jax.data.augment import AugmentParams, augment
from ws3d_jax.data.labels import IGNORE_LABEL
from ws3d_jax.losses.targets import Regions
from ws3d_jax.models.pointgroup import Proposals
from ws3d_jax.sparse import host_kernel_map

VIEW_KEYS = ('coords', 'features', 'voxel_valid', 'point2voxel', 'point_valid')


@struct.dataclass
class View:
  """One (augmented) view of a batch's scenes, padded: what the network reads."""
  coords: np.ndarray  # (V, 4) int32 batch index and voxel coordinates
  features: np.ndarray  # (V, F) float32
  voxel_valid: np.ndarray  # (V,) bool
  point2voxel: np.ndarray  # (P,) int32; V on padding points
  point_valid: np.ndarray  # (P,) bool
  xyz: np.ndarray | None = None  # (P, 3) the points' coordinates (instance batches)
  offset_target: np.ndarray | None = None  # (P, 3) to the point's instance centre (instance batches)
  geometry: sparse.Geometry | None = None  # the kernel maps, where the batcher builds them on the host


@struct.dataclass
class Batch:
  """What the training step reads. Per device shard (a leading device axis when sharded)."""
  views: tuple  # View per view: one, or two for the unlabeled branch
  labels: np.ndarray  # (P,) int32, the ignore label on unlabeled and padding points
  point_batch: np.ndarray  # (P,) int32, the batch scene of each point; -1 on padding
  regions: Regions | None = None  # over-segmentation regions, where the scenes have them
  instance: np.ndarray | None = None  # (P,) instance ids unique over the batch, 0: none (instance batches)
  proposals: Proposals | None = None  # the ScoreNet's proposals (instance batches; filled while training)
  caps: sparse.Capacities | None = struct.field(pytree_node=False, default=None)
  scene_id: tuple = struct.field(pytree_node=False, default=())

  def on_device(self) -> 'Batch':
    """The batch without its scene names: what goes to the step (a name is no array, and as a
    static field it would make every batch a new program)."""
    return self.replace(scene_id=())


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


@dataclasses.dataclass(frozen=True)
class Batcher:
  """Turns a list of scene elements into one padded batch.

  An element is a dict with 'views': a list of (xyz, features) pairs (1 or 2), and the
  per-point arrays shared by its views ('semantic', optionally 'region_id' + 'region_pairs'
  + 'pair_boundary', and 'labeled': whether the element belongs to the labeled branch).

  With ``num_shards`` (data parallel), the elements are cut into that many consecutive groups,
  one per device; every group is padded to the same capacities (planned from the largest
  group) and each array gets a leading device axis.

  With ``max_proposals`` > 0 (instance segmentation) the batch also holds each view's point
  coordinates and offset targets, instance ids made unique over the batch, and an empty
  proposal set of static size that the training loop fills in once the ScoreNet trains.

  With ``chunk_sizes`` (one per level, as ``BackboneSpec.chunk_sizes``), every view carries its
  kernel maps, built here on the host (sparse/host_kernel_map.py), so the step only computes;
  without, the step builds them on the device.

  A Batcher without a profile only counts (``count``), which is what a profile is fitted on;
  ``with_profile`` gives the one that batches.
  """
  voxel_size: float
  profile: sparse.BucketProfile | None
  num_levels: int = 5
  num_shards: int | None = None
  max_proposals: int = 0
  chunk_sizes: tuple | None = None

  def __post_init__(self):
    if self.chunk_sizes is not None and len(self.chunk_sizes) != self.num_levels:
      raise ValueError(f'{len(self.chunk_sizes)} chunk sizes for a network of {self.num_levels} levels')

  def __call__(self, elements: Sequence[dict], agree=None) -> Batch:
    """``agree``: counts -> counts, the maximum over the processes of a multi-host run (their
    batches must share capacities)."""
    names = [e.get('scene_id', f'element {i}') for i, e in enumerate(elements)]
    shards = 1 if self.num_shards is None else self.num_shards
    if len(elements) % shards:
      raise ValueError(f'{len(elements)} scenes per batch do not split over {shards} devices')
    size = len(elements) // shards
    groups = [(elements[i:i + size], names[i:i + size]) for i in range(0, len(elements), size)]
    voxelized = [self._voxelize(g, n) for g, n in groups]
    counts = _merged([c for _, _, c in voxelized])
    caps = self.profile.plan(counts if agree is None else agree(counts))
    parts = [self._pad(g, views, pyramids, caps) for (g, _), (views, pyramids, _) in zip(groups, voxelized)]
    batch = parts[0] if self.num_shards is None else stack_trees(parts)
    return batch.replace(caps=caps, scene_id=tuple(names))

  def with_profile(self, profile: sparse.BucketProfile) -> 'Batcher':
    return dataclasses.replace(self, profile=profile)

  def count(self, elements: Sequence[dict]) -> sparse.StructureCounts:
    """The structure counts of a batch of these elements (the largest shard's), to fit a
    BucketProfile on."""
    shards = self.num_shards or 1
    size = max(1, len(elements) // shards)
    names = [e.get('scene_id', f'element {i}') for i, e in enumerate(elements)]
    return _merged([self._voxelize(elements[i:i + size], names[i:i + size])[-1]
                    for i in range(0, len(elements), size)])

  def _voxelize(self, elements, names):
    num_views = len(elements[0]['views'])
    views = [[sparse.voxelize_scene(*e['views'][v], self.voxel_size, n) for e, n in zip(elements, names)]
             for v in range(num_views)]
    with_regions = 'region_id' in elements[0]
    regions = sum(int(e['region_id'].max()) + 1 for e in elements) if with_regions else 0
    region_pairs = sum(len(e['region_pairs']) for e in elements) if with_regions else 0
    # The pyramid of every view's voxels: its counts plan the bucket, its maps fill it.
    pyramids = [host_kernel_map.pyramid(_batch_coords(vox), self.num_levels) for vox in views]
    counts = _merged([p.counts(sum(len(v.point2voxel) for v in vox), regions, region_pairs)
                      for p, vox in zip(pyramids, views)])
    return views, pyramids, counts

  def _pad(self, elements, views, pyramids, caps) -> Batch:
    padded = [sparse.collate(vox, caps.voxels[0], caps.points) for vox in views]
    views = tuple(View(**{k: getattr(p, k) for k in VIEW_KEYS}, geometry=self._maps(p, pyr, caps))
                  for p, pyr in zip(padded, pyramids))
    labels = _pad(np.concatenate([e['semantic'] for e in elements]), caps.points, IGNORE_LABEL)
    point_batch = _pad(np.repeat(np.arange(len(elements)), [len(e['semantic']) for e in elements]), caps.points, -1)
    batch = Batch(views=views, labels=labels, point_batch=point_batch,
                  regions=_batch_regions(elements, caps) if 'region_id' in elements[0] else None)
    if self.max_proposals:
      batch = _with_instances(batch, elements, caps, self.max_proposals)
    return batch

  def _maps(self, view: sparse.SparseBatch, pyr, caps):
    if self.chunk_sizes is None:
      return None
    return host_kernel_map.geometry(pyr, view.voxel_valid, view.point2voxel, view.point_valid, caps, self.chunk_sizes)


def _merged(counts):
  out = counts[0]
  for c in counts[1:]:
    out = out.merge(c)
  return out


def stack_trees(trees: Sequence):
  """Stack equally-shaped pytrees of arrays along a new leading axis."""
  return jax.tree.map(lambda *leaves: np.stack(leaves), *trees)


def _batch_coords(vox) -> np.ndarray:
  return np.concatenate([np.concatenate([np.full((len(v.coords), 1), b, np.int32), v.coords], 1)
                         for b, v in enumerate(vox)])


def _pad(x: np.ndarray, size: int, fill) -> np.ndarray:
  out = np.full((size,) + x.shape[1:], fill, x.dtype)
  out[:len(x)] = x
  return out


def _batch_regions(elements, caps) -> Regions:
  """Region ids made global over the batch (scene offsets); padding points -> caps.regions."""
  offsets = np.cumsum([0] + [int(e['region_id'].max()) + 1 for e in elements])
  region_id = np.concatenate([e['region_id'] + o for e, o in zip(elements, offsets)])
  pairs = np.concatenate([e['region_pairs'].reshape(-1, 2) + o for e, o in zip(elements, offsets)])
  boundary = np.concatenate([e.get('pair_boundary', np.zeros(len(e['region_pairs']), np.float32))
                             for e in elements]).astype(np.float32)
  region_batch = np.repeat(np.arange(len(elements)), np.diff(offsets))
  labeled = np.repeat([bool(e.get('labeled', True)) for e in elements], np.diff(offsets))
  return Regions(id=_pad(region_id.astype(np.int32), caps.points, caps.regions),
                 valid=np.arange(caps.regions) < offsets[-1],
                 scene=_pad(region_batch.astype(np.int32), caps.regions, -1),
                 labeled=_pad(labeled, caps.regions, False),
                 pairs=_pad(pairs.astype(np.int32), caps.region_pairs, caps.regions),
                 pair_valid=np.arange(caps.region_pairs) < len(pairs),
                 pair_boundary=_pad(boundary, caps.region_pairs, 0.0))


def offset_targets(xyz: np.ndarray, instance: np.ndarray) -> np.ndarray:
  """Per point, the vector to the centre (mean) of its instance; zero outside instances."""
  out = np.zeros_like(xyz, np.float32)
  inside = instance > 0
  if inside.any():
    ids, inverse = np.unique(instance[inside], return_inverse=True)
    count = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
    centre = np.stack([np.bincount(inverse, xyz[inside, d], len(ids)) for d in range(3)], 1) / count[:, None]
    out[inside] = centre[inverse] - xyz[inside]
  return out


def _with_instances(batch: Batch, elements, caps, max_proposals: int) -> Batch:
  """``batch`` with the instance arrays: ids unique over the batch, each view's point coordinates
  and offset targets, and an empty proposal set of static size."""
  offsets = np.cumsum([0] + [int(e['instance'].max(initial=0)) for e in elements])
  instance = np.concatenate([np.where(e['instance'] > 0, e['instance'] + o, 0) for e, o in zip(elements, offsets)])
  views = []
  for v, view in enumerate(batch.views):
    xyz = np.concatenate([e['views'][v][0] for e in elements])
    target = np.concatenate([offset_targets(e['views'][v][0], e['instance']) for e in elements])
    views.append(view.replace(xyz=_pad(xyz.astype(np.float32), caps.points, 0.0),
                              offset_target=_pad(target, caps.points, 0.0)))
  # Each point is in at most two proposals (one per coordinate set).
  return batch.replace(views=tuple(views), instance=_pad(instance.astype(np.int32), caps.points, 0),
                       proposals=Proposals.empty(max_proposals, 2 * caps.points))


def make_element(scene: dict, rng: np.random.Generator, augment_params: AugmentParams, num_views: int) -> dict:
  """Augmented views of one scene plus the arrays its views share."""
  views = [augment(scene['xyz'], scene['features'], rng, augment_params) for _ in range(num_views)]
  element = {'scene_id': str(scene.get('scene_id', '')), 'views': views, 'semantic': scene['semantic']}
  for key in ('region_id', 'region_pairs', 'pair_boundary', 'labeled', 'instance'):
    if key in scene:
      element[key] = scene[key]
  return element


def training_stream(source, batch_size: int, seed: int, batcher: Batcher, augment_params: AugmentParams,
                    num_views: int = 1, num_threads: int = 2, prefetch: int = 2, share: hosts.Share | None = None):
  """An endless, seeded, prefetched iterator of batches of ``batch_size`` scenes of ``source``
  (over all devices of all processes; this process's ``share`` of them)."""
  if not len(source):
    raise ValueError('the training set is empty')
  return _stream([('training', source, batch_size, seed)], batcher, augment_params, num_views, 0, share,
                 num_threads, prefetch)


def ws3d_stream(labeled, unlabeled, labeled_batch: int, unlabeled_batch: int, seed: int, batcher: Batcher,
                augment_params: AugmentParams, start_step: int = 0, num_views: int = 2, num_threads: int = 2,
                prefetch: int = 2, share: hosts.Share | None = None):
  """Batches of ``labeled_batch`` labeled plus ``unlabeled_batch`` unlabeled scenes, two views
  each, from step ``start_step`` on; each device gets the same number of each, and this process
  reads the scenes of its ``share`` of the devices only.

  Batch i is a pure function of (seed, i): each branch is its own seeded, reshuffled-per-epoch
  order of scenes, so a run resumed at step i sees exactly the batches the first run would have,
  and a run on more processes sees the same batches, cut the same way.
  """
  for name, source, size in (('labeled', labeled, labeled_batch), ('unlabeled', unlabeled, unlabeled_batch)):
    if size and len(source) == 0:
      raise ValueError(f'the {name} set is empty but its batch size is {size}')
  return _stream([('labeled', labeled, labeled_batch, seed), ('unlabeled', unlabeled, unlabeled_batch, seed + 1)],
                 batcher, augment_params, num_views, start_step, share, num_threads, prefetch)


def _stream(branches, batcher: Batcher, augment_params: AugmentParams, num_views: int, start_step: int,
            share: hosts.Share, num_threads: int, prefetch: int):
  """Batch i holds, for every branch (name, source, scenes per batch, seed), scenes i*size to
  (i+1)*size-1 of that branch's endless shuffled order, dealt to the devices in consecutive
  groups; this process makes the elements of its own devices' groups only. No ``share``: one
  process, with as many devices as the batcher has shards."""
  share = share or hosts.Share(local=batcher.num_shards or 1)
  if (batcher.num_shards or 1) != share.local:
    raise ValueError(f'the batcher pads {batcher.num_shards or 1} shards but this process feeds {share.local} devices')
  orders = []
  for name, source, size, seed in branches:
    if size % share.devices:
      raise ValueError(f'the {name} batch size {size} does not split over {share.devices} devices')
    if size:
      orders.append((size, grain.MapDataset.source(source).seed(seed).shuffle().repeat()
                     .random_map(lambda scene, rng: make_element(scene, rng, augment_params, num_views))))
  exchange = hosts.Exchange(share, 'capacities')

  def make_batch(step):
    elements = []
    for device in share.shards():
      for size, order in orders:
        per_device = size // share.devices
        first = step * size + device * per_device
        elements += [order[i] for i in range(first, first + per_device)]
    agree = None if share.processes == 1 else lambda counts: counts_of(exchange.max(step, flat_counts(counts)))
    return batcher(elements, agree=agree)

  ds = grain.MapDataset.range(start_step, 2 ** 62).map(make_batch)
  ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))
  return iter(grain.experimental.ThreadPrefetchIterDataset(ds, prefetch_buffer_size=prefetch))


def flat_counts(counts: sparse.StructureCounts) -> tuple:
  return (*counts.voxels, *counts.pairs, counts.points, counts.regions, counts.region_pairs)


def counts_of(flat: tuple) -> sparse.StructureCounts:
  levels = (len(flat) - 3) // 2
  return sparse.StructureCounts(voxels=tuple(flat[:levels]), pairs=tuple(flat[levels:2 * levels]), points=flat[-3],
                                regions=flat[-2], region_pairs=flat[-1])

"""The boundary prediction network (METHOD.md, "Boundary prediction network").

A point-wise binary classifier on the sparse backbone, trained with the focal loss on the
labeled scenes' ground-truth boundary points, then run once over the unlabeled scenes. Its
boundary points are stored in ``<cache>/points.npz`` with a manifest naming the split and the
settings they came from; a later run (a resumed one, or one with other loss weights) with the
same split and settings reads them back instead of training the network again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import jax
import numpy as np
from clu import metric_writers
from flax.traverse_util import flatten_dict, unflatten_dict

from ws3d_jax import files, hosts, progress
from ws3d_jax.constants import IGNORE_LABEL
from ws3d_jax.data import pipeline
from ws3d_jax.data.batch_fitting import BatchingSpec, fitted_batcher
from ws3d_jax.evaluation.boundary import BoundaryCounts, boundary_counts
from ws3d_jax.losses.objective import BoundaryObjective
from ws3d_jax.models import minkunet
from ws3d_jax.train import fit, steps
from ws3d_jax.train.evaluate import scene_logits
from ws3d_jax.train.optimizer import OptimSpec, make_optimizer

# The focal loss reads only the labels (the boundary targets).
READER = steps.BatchReader(targets=steps.semantic_targets)


@dataclasses.dataclass(frozen=True)
class BoundarySpec:
  """What the boundary network is (``config.boundary``, with the main network's backbone knobs
  and the run's optimiser, batching and seed), made once by the run builder."""
  backbone: minkunet.BackboneSpec
  dtype: object  # compute dtype
  steps: int
  batch_size: int
  focal_alpha: float
  threshold: float  # 0: the F1-maximising threshold on the labeled scenes; else a fixed probability
  cache_dir: str  # '': <workdir>/boundary
  quality_scenes: int
  init_from: str
  init_step: int
  seed: int
  optim: OptimSpec
  batching: BatchingSpec
  log_every: int
  num_threads: int
  # JSON of what decides its points besides the split: the cache is reused when they and the split match.
  identity: str


class BoundaryTargets:
  """A labeled source whose 'semantic' is the boundary target: 1 boundary, 0 not, ignore where
  the point has no label."""

  def __init__(self, source):
    self.source = source

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    scene = self.source[i]
    target = np.where(scene['semantic'] == IGNORE_LABEL, IGNORE_LABEL, scene['boundary'].astype(np.int32))
    return {**scene, 'semantic': target.astype(np.int32)}


def identity(data_name: str, voxel_size: float, section: dict, seed: int) -> str:
  """BoundarySpec.identity from the config's values (``section``: config.boundary as a dict).
  Where the cache lives and how many scenes its quality is reported on do not change the points."""
  network = {k: v for k, v in section.items() if k not in ('cache_dir', 'quality_scenes')}
  if not network.get('init_from'):  # not set: the fingerprint of the caches written before the field existed
    network.pop('init_from', None)
    network.pop('init_step', None)
  return json.dumps({'data': data_name, 'voxel_size': voxel_size, 'boundary': network, 'seed': seed},
                    sort_keys=True, default=str)


def fingerprint(spec: BoundarySpec, data) -> str:
  settings = {**json.loads(spec.identity), 'split': data.fingerprint}
  return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def with_boundary_points(spec: BoundarySpec | None, data, workdir: Path, writer=None):
  """``data`` with the boundary network's points in its unlabeled branch; unchanged without a
  ``spec`` (a run whose energy reads no boundary points) or without unlabeled scenes."""
  if spec is None or not len(data.unlabeled):
    return data
  return dataclasses.replace(data, unlabeled=data.unlabeled.with_boundary(boundary_points(spec, data, workdir,
                                                                                           writer)))


def boundary_points(spec: BoundarySpec, data, workdir: Path, writer=None) -> dict:
  """{unlabeled entry key: bool per point}, from the cache when it matches, else computed
  (``writer``: where its training curves and quality go; None: nowhere)."""
  writer = writer if writer is not None else metric_writers.MultiWriter([])
  cache = Path(spec.cache_dir) if spec.cache_dir else Path(workdir) / 'boundary'
  manifest, points_file = cache / 'manifest.json', cache / 'points.npz'
  key = fingerprint(spec, data)
  if manifest.is_file() and points_file.is_file():
    info = json.loads(manifest.read_text())
    if info.get('fingerprint') == key:
      with np.load(points_file) as f:
        points = {k: f[k] for k in f.files}
      logging.info('boundary points of %d unlabeled scenes read from %s', len(points), cache)
      return points
    logging.info('boundary cache in %s is for another split or setting; recomputing', cache)

  variables, model, profile = train_boundary_net(spec, data, writer)
  predict = lambda scene: scene_logits(variables, scene, spec.batching.voxel_size, profile, model)[:, 0]
  with progress.Activity.current().doing('boundary network: choosing its threshold on the labeled scenes'):
    threshold = decision_threshold(spec.threshold, predict, data.labeled)
  points = {}
  with progress.Activity.current().doing(lambda: f'boundary points: {len(points)} of {len(data.unlabeled)} '
                                                 'unlabeled scenes done'):
    for i in range(len(data.unlabeled)):
      points[data.unlabeled.key(i)] = predict(data.unlabeled[i]) > threshold
  with progress.Activity.current().doing('boundary network: precision and recall on evaluation scenes'):
    # Within one voxel: the network gives every point of a voxel one output.
    quality = boundary_quality(predict, threshold, data, spec.quality_scenes, spec.batching.voxel_size)
  writer.write_scalars(spec.steps, {f'boundary/{k}': v for k, v in quality.items()})
  logging.info('boundary network on %d evaluation scenes (never trained on): %s. Its points set w_ij of the '
               'unlabeled scenes; an F1 far below 0.5 means the energy mostly pulls neighbours together.',
               min(len(data.eval_scenes), spec.quality_scenes),
               ', '.join(f'{k} {v:.3f}' for k, v in quality.items()))

  if not hosts.writes_outputs():
    return points
  # The manifest is written last: a run killed half way leaves no manifest, so no cache is trusted.
  manifest.unlink(missing_ok=True)
  files.save_npz(points_file, points)
  files.write_json(manifest, {'fingerprint': key, 'scenes': len(points), 'quality': quality,
                              'settings': json.loads(spec.identity)['boundary']})
  return points


def make_boundary_model(spec: BoundarySpec, bn_axis=steps.AXIS) -> minkunet.MinkUNet:
  return minkunet.MinkUNet(num_classes=1, spec=spec.backbone, dtype=spec.dtype, bn_axis=bn_axis)


def train_boundary_net(spec: BoundarySpec, data, writer):
  """Trains the boundary network on the labeled scenes; returns (variables, predict model, profile)."""
  b = spec
  share = hosts.this_process()
  batch_size = max(share.devices, b.batch_size // share.devices * share.devices)  # over every device of the run
  source = BoundaryTargets(data.labeled)
  aug = b.batching.augment
  rng = np.random.default_rng(b.seed)
  elements = [pipeline.make_element(source[i % len(source)], rng, aug, 1) for i in range(batch_size)]
  model = make_boundary_model(spec)
  batcher = fitted_batcher(b.batching, elements, model.spec.chunk_sizes(), share,
                           pin_branches=[(source, batch_size // share.devices)])
  tx, schedule = make_optimizer(b.optim, b.steps, max(1, len(source) // batch_size))
  state = steps.initial_state(b.seed + 7, model, tx, batcher, elements, "the boundary network's")
  if b.init_from:
    state = from_main_backbone(state, b.init_from, b.init_step)
  stream = pipeline.training_stream(source, batch_size, b.seed + 9, batcher, aug, num_views=1,
                                    num_threads=b.num_threads, share=share)
  loop = fit.Loop(name='boundary network', step_label='boundary network step',
                  compile_name="the boundary network's train step", scalar_prefix='boundary/', total_steps=b.steps,
                  log_every=b.log_every)
  state = fit.fit(loop, state, stream, model, BoundaryObjective(alpha=b.focal_alpha), READER,
                  jax.random.PRNGKey(b.seed + 8), writer, schedule).state
  return ({'params': state.params, 'batch_stats': state.batch_stats}, model.clone(bn_axis=None), batcher.profile)


def from_main_backbone(state, workdir: str, step: int):
  """``state`` with every parameter and BatchNorm statistic that the backbone of another run's
  checkpoint (``<workdir>/checkpoints/<step>``, 0: the latest) has under the same name and shape;
  the rest (the one-logit classifier) keep their initialisation. The optimiser starts afresh."""
  import orbax.checkpoint as ocp  # noqa: PLC0415
  directory = (Path(workdir) / 'checkpoints').absolute()
  manager = ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler())
  step = step or manager.latest_step()
  if step is None or step not in manager.all_steps():
    raise FileNotFoundError(f'boundary.init_from: no checkpoint of step {step} in {directory} '
                            f'(it has {sorted(manager.all_steps())})')
  saved = manager.restore(step)
  taken, kept = 0, 0
  out = {}
  for collection in ('params', 'batch_stats'):
    source = flatten_dict(saved[collection].get('backbone', {}))
    flat = flatten_dict(getattr(state, collection))
    for path, value in flat.items():
      if path in source and np.shape(source[path]) == np.shape(value):
        flat[path], taken = np.asarray(source[path], np.asarray(value).dtype), taken + 1
      else:
        kept += 1
    out[collection] = unflatten_dict(flat)
  if not taken:
    raise ValueError(f'boundary.init_from: the checkpoint of step {step} in {directory} has no backbone layer of the '
                     'boundary network\'s names and shapes (set boundary.backbone and width_scale as model.*)')
  logging.info('boundary network initialised from the backbone of step %d in %s: %d arrays taken, %d kept (the '
               'classifier)', step, directory, taken, kept)
  return state.replace(params=out['params'], batch_stats=out['batch_stats'])


def decision_threshold(probability: float, predict, labeled) -> float:
  """The logit above which a point is a boundary point. A focal-loss output is not calibrated
  (it pushes easy points far from 0.5), so by default (probability 0) the threshold is the one
  that maximises F1 on the labeled scenes; a probability in (0, 1) fixes it instead."""
  if probability:
    # sigmoid(z) > t  <=>  z > logit(t): no exp over every point.
    return float(np.log(probability / (1 - probability)))
  logits, truth = [], []
  for i in range(len(labeled)):
    scene = labeled[i]
    known = scene['semantic'] != IGNORE_LABEL
    logits.append(predict(scene)[known])
    truth.append(np.asarray(scene['boundary'], bool)[known])
  return f1_threshold(np.concatenate(logits), np.concatenate(truth))


def f1_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
  """The threshold t maximising F1 of (scores > t) against truth: halfway between the scores at
  the best cut of the descending order."""
  order = np.argsort(-scores, kind='stable')
  s, hits = scores[order], truth[order].astype(np.int64)
  tp = np.cumsum(hits)  # true positives when the first k+1 points are called boundary
  f1 = 2 * tp / (np.arange(1, len(s) + 1) + max(int(hits.sum()), 1))
  distinct = np.append(s[1:] < s[:-1], True)  # a cut can only fall between distinct scores
  k = int(np.argmax(np.where(distinct, f1, -1.0)))
  return float((s[k] + s[k + 1]) / 2) if k + 1 < len(s) else float(s[k] - 1.0)


def boundary_quality(predict, threshold: float, data, quality_scenes: int, tolerance: float) -> dict:
  """Precision / recall / F1 of predicted boundary points against the ground truth of a few
  evaluation scenes (never used for training): exact, and within ``tolerance`` metres (the
  ``*_within`` keys; evaluation/boundary.py)."""
  counts, total = BoundaryCounts(), 0
  for i in range(min(len(data.eval_scenes), quality_scenes)):
    scene = data.eval_scenes[i]
    known = scene['semantic'] != IGNORE_LABEL
    pred = (predict(scene) > threshold)[known]
    truth = np.asarray(scene['boundary'], bool)[known]
    total += len(truth)
    counts += boundary_counts(np.asarray(scene['xyz'])[known], pred, truth, tolerance)
  return {**counts.scores(), 'tolerance': tolerance, 'predicted_fraction': counts.predicted / max(total, 1),
          'true_fraction': counts.true / max(total, 1), 'threshold_logit': threshold}

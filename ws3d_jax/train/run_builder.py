"""The one place a run is built from its config, as flax's ``create_train_state`` and
big_vision's train.py do it: the config is read here, once, and every layer below gets a small
frozen value of what it needs. The trainer, the boundary network, the diagnostics and the
benchmarks all build through it.

    spec = data_spec(config)                   what the data layer reads
    data = sources.load_experiment(spec, workdir)
    run = build(config, data)                  task, model, objective, optimiser, batcher, steps,
                                               the loop's, the evaluation's and the boundary network's settings
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax
from flax import linen as nn

from ws3d_jax import hosts
from ws3d_jax.data import pipeline
from ws3d_jax.data.augment import AugmentParams
from ws3d_jax.data.batch_fitting import BatchingSpec, fitted_batcher, sample_elements
from ws3d_jax.data.sources import DataSpec
from ws3d_jax.losses.contrast import ContrastParams
from ws3d_jax.losses.energy import EnergyParams
from ws3d_jax.losses.objective import Objective
from ws3d_jax.losses.schedule import Ramp
from ws3d_jax.models import minkunet
from ws3d_jax.models.ws3d import WS3DNet
from ws3d_jax.sparse import fused
from ws3d_jax.train import boundary_network, tasks
from ws3d_jax.train.evaluate import EvalSpec
from ws3d_jax.train.optimizer import OptimSpec, make_optimizer
from ws3d_jax.train.steps import AXIS
from ws3d_jax.train.tasks import Task


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """The training loop's settings (``config.train``, the seed, the input threads)."""
  seed: int
  labeled_batch: int
  unlabeled_batch: int
  log_every: int
  checkpoint_every: int
  checkpoint_seconds: float
  eval_every: int
  keep_checkpoints: int
  init_from: str
  init_step: int
  num_threads: int


@dataclasses.dataclass(frozen=True)
class LabeledWarmup:
  """The labeled-only first steps of a WS3D run (``train.labeled_warmup``): the step of a sup_only
  run (labeled scenes alone, the unlabeled terms off), on the same model, optimiser and schedule."""
  steps: int  # the run's steps 1 .. steps
  objective: object
  batcher: pipeline.Batcher


@dataclasses.dataclass(frozen=True)
class Run:
  """What a run trains and evaluates with."""
  task: Task
  train: TrainSpec
  evaluation: EvalSpec
  boundary: boundary_network.BoundarySpec | None  # None: the run's energy reads no boundary points
  augment: AugmentParams
  model: nn.Module  # BatchNorm statistics averaged over the devices (the pmapped step)
  eval_model: nn.Module  # the same network for one unsharded scene
  objective: object  # static argument of the step: (outputs, geoms, targets, rng, step) -> (loss, terms)
  tx: optax.GradientTransformation
  schedule: object  # step -> learning rate
  batcher: pipeline.Batcher
  total_steps: int
  steps_per_epoch: int
  example: tuple  # one batch of the run's shape, as elements: what the variables are initialised on
  warmup: LabeledWarmup | None = None  # None: every step is the run's own


def build(config, data, one_device: bool = False) -> Run:
  """The run of ``config`` on the scenes of ``data`` (sources.load_experiment). ``one_device``:
  the same run unsharded (no device axis, no cross-device statistics, no pinned bucket), for
  what reads or probes a trained run (the diagnostics)."""
  task = tasks.get(config.task)
  num_classes = len(data.class_names)
  settings = task_settings(config, task, data.class_names)
  total, per_epoch = steps_of(config, data)
  t, batching = train_spec(config), batching_spec(config)
  elements = sample_elements(data, batching, t.labeled_batch, t.unlabeled_batch)
  share, axis = (None, None) if one_device else (hosts.this_process(), AXIS)
  pin = () if one_device else [(data.labeled, t.labeled_batch // share.devices),
                               (data.unlabeled, t.unlabeled_batch // share.devices)]
  max_proposals = getattr(settings, 'max_proposals', 0)
  ws3d = ws3d_net(config, num_classes, bn_axis=axis)
  chunks = ws3d.spec.chunk_sizes()
  batcher = fitted_batcher(batching, elements, chunks, share, max_proposals=max_proposals, pin_branches=pin)
  tx, schedule = make_optimizer(optim_spec(config), total, per_epoch)
  full = objective(config, num_classes, total, axis_name=axis)
  warmup = None
  if config.train.labeled_warmup and t.unlabeled_batch and full.ramp.warmup_steps and not one_device:
    # The batcher and objective a sup_only run of this config has: the same labeled batches.
    labeled = sample_elements(data, batching, t.labeled_batch, 0)
    warmup = LabeledWarmup(
        steps=full.ramp.warmup_steps,
        objective=task.make_objective(dataclasses.replace(full, w_energy=0.0, w_contrast=0.0, ramp=Ramp()), settings),
        batcher=fitted_batcher(batching, labeled, chunks, share, max_proposals=max_proposals,
                               pin_branches=[(data.labeled, t.labeled_batch // share.devices)]))
  return Run(task=task, train=t, evaluation=eval_spec(config, settings), boundary=boundary_spec(config),
             augment=batching.augment, model=task.make_model(ws3d, settings),
             eval_model=task.make_model(ws3d.clone(bn_axis=None), settings),
             objective=task.make_objective(full, settings), tx=tx, schedule=schedule, batcher=batcher,
             total_steps=total, steps_per_epoch=per_epoch, example=tuple(elements), warmup=warmup)


# --- each layer's value, from its config section -------------------------------------------------

def data_spec(config) -> DataSpec:
  d = config.data
  fields = {f.name for f in dataclasses.fields(DataSpec)} - {'augment'}
  return DataSpec(**{k: d[k] for k in fields if k in d}, augment=augment_params(d.augment))


def augment_params(section) -> AugmentParams:
  fields = {f.name for f in dataclasses.fields(AugmentParams)}
  unknown = set(section.keys()) - fields
  if unknown:
    raise ValueError(f'unknown augmentation field(s) {sorted(unknown)}; known: {sorted(fields)}')
  return AugmentParams(**{k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in section.items()})


def batching_spec(config) -> BatchingSpec:
  b = config.buckets
  return BatchingSpec(voxel_size=config.data.voxel_size, augment=augment_params(config.data.augment), seed=config.seed,
                      headroom=b.headroom, growth=b.growth, min_voxels=b.min_voxels, pin=b.pin)


def train_spec(config) -> TrainSpec:
  t = config.train
  return TrainSpec(seed=config.seed, labeled_batch=t.labeled_batch, unlabeled_batch=t.unlabeled_batch,
                   log_every=t.log_every, checkpoint_every=t.checkpoint_every,
                   checkpoint_seconds=60 * t.checkpoint_minutes, eval_every=t.eval_every,
                   keep_checkpoints=t.keep_checkpoints, init_from=t.init_from, init_step=t.init_step,
                   num_threads=config.data.num_threads)


def optim_spec(config) -> OptimSpec:
  return OptimSpec(**config.optim.to_dict())


def eval_spec(config, task_settings=None) -> EvalSpec:
  e = config.eval
  return EvalSpec(voxel_size=config.data.voxel_size, export=tuple(e.export), ply_scenes=e.ply_scenes,
                  tensorboard_scenes=e.tensorboard_scenes, max_scenes_during_training=e.max_scenes_during_training,
                  checkpoint=str(e.checkpoint), task_settings=task_settings)


def task_settings(config, task: Task, class_names):
  """The task's settings from the config section of its name (None for a task without one)."""
  if task.settings_type is None:
    return None
  section = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config[task.name].to_dict().items()}
  return task.settings_type(class_names=tuple(class_names), **section)


def steps_of(config, data) -> tuple[int, int]:
  """(total steps, steps per epoch) of the run. An epoch is one pass over the training scenes at
  ``train.batch_size``: it does not depend on the label ratio or on how the batch is split into
  labeled and unlabeled scenes, so a sup_only run (no unlabeled scenes) decays its learning rate
  at the same steps as WS3D."""
  scenes = len({e['scene'] for e in data.split['labeled'] + data.split['unlabeled']})
  per_epoch = max(1, scenes // config.train.batch_size)
  return config.train.steps or config.train.epochs * per_epoch, per_epoch


def backbone_spec(model_section, backbone: str = '', width_scale: float = 0.0) -> minkunet.BackboneSpec:
  """The backbone of ``model.*``, or another preset and width with the same knobs (impl, chunk)."""
  m = model_section
  width = width_scale or m.width_scale
  impl = fused.resolve(m.impl, compute_dtype(m.compute_dtype))
  spec = minkunet.backbone_spec(backbone or m.backbone, impl=impl)
  if width != 1.0:
    spec = dataclasses.replace(spec, stem=max(4, int(spec.stem * width)),
                               planes=tuple(max(4, int(p * width)) for p in spec.planes))
  return dataclasses.replace(spec, chunk=m.chunk)


def compute_dtype(name: str):
  return {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[name]


def ws3d_net(config, num_classes: int, bn_axis: str | None = AXIS) -> WS3DNet:
  m = config.model
  spec = backbone_spec(m)
  last = spec.num_levels - 1
  stages = (last,) if config.loss.last_stage_only else tuple(range(last + 1))
  return WS3DNet(num_classes=num_classes, spec=spec, dtype=compute_dtype(m.compute_dtype),
                 bn_axis=bn_axis, embed_dim=m.embed_dim, contrast_stages=stages)


def objective(config, num_classes: int, total_steps: int = 0, axis_name: str | None = AXIS) -> Objective:
  """The joint objective; ``total_steps`` turns loss.warmup / loss.rampup (fractions) into steps;
  ``axis_name``: the pmapped step's device axis (None for a step outside a pmap)."""
  l = config.loss
  total_steps = total_steps or config.train.steps
  return Objective(
      num_classes=num_classes, axis_name=axis_name,
      w_ce=l.w_ce if l.supervised_ce else 0.0, w_sup_contrast=l.w_sup_contrast if l.supervised_contrast else 0.0,
      w_energy=l.w_energy, w_contrast=l.w_contrast if l.region_contrast else 0.0,
      ramp=Ramp(warmup_steps=round(l.warmup * total_steps), rampup_steps=round(l.rampup * total_steps)),
      energy=EnergyParams(eps=l.eps, gamma=l.gamma, use_boundary=l.boundary_labels, use_pairwise=l.pairwise_energy,
                          use_confidence_mask=l.energy_confidence_mask, normalize=l.normalize_energy),
      contrast=ContrastParams(tau=l.tau, gamma=l.gamma, use_confidence_mask=l.contrast_confidence_mask,
                              same_scene_negatives=l.same_scene_negatives, max_regions=l.max_regions))


def boundary_spec(config) -> boundary_network.BoundarySpec | None:
  """The boundary network of the run, or None where its energy reads no boundary points."""
  b, l = config.boundary, config.loss
  if not (b.enabled and l.w_energy and l.boundary_labels and config.train.unlabeled_batch):
    return None
  return boundary_network.BoundarySpec(
      backbone=backbone_spec(config.model, b.backbone, b.width_scale), dtype=compute_dtype(config.model.compute_dtype),
      steps=b.steps, batch_size=b.batch_size, focal_alpha=b.focal_alpha, threshold=b.threshold, cache_dir=b.cache_dir,
      quality_scenes=b.quality_scenes, init_from=b.init_from, init_step=b.init_step, seed=config.seed,
      optim=optim_spec(config), batching=batching_spec(config), log_every=config.train.log_every,
      num_threads=config.data.num_threads,
      identity=boundary_network.identity(config.data.name, config.data.voxel_size, b.to_dict(), config.seed))

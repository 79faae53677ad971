"""Training and evaluation loop: ``train_and_evaluate(config, workdir)``.

The step functions are small and pure (``create_train_state``, ``train_step``, ``eval_step``);
the batch's capacities are a static argument, so each capacity bucket compiles once.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from clu import metric_writers
from flax.training import train_state

from ws3d_jax import sparse
from ws3d_jax.data import labels as label_defs
from ws3d_jax.data import build
from ws3d_jax.data.augment import AugmentParams, augment
from ws3d_jax.evaluation import semantic
from ws3d_jax.losses import supervised
from ws3d_jax.models import minkunet

NUM_LEVELS = minkunet.NUM_LEVELS
MODEL_KEYS = ('coords', 'features', 'voxel_valid', 'point2voxel', 'point_valid')


class TrainState(train_state.TrainState):
  batch_stats: dict


# --- data -----------------------------------------------------------------------------------------

def load_scenes(config) -> tuple:
  """(train source, validation source, class names): TFDS array_record data sources, built on
  first use into ``config.data.data_dir`` (the synthetic rooms need no download)."""
  d = config.data
  if d.name != 'synthetic':
    raise ValueError(f'data set {d.name!r} is not wired into the trainer yet; use synthetic')
  sources = build.load_or_build('synthetic', d.data_dir, config={
      'num_train': d.num_train, 'num_val': d.num_val, 'num_points': d.points_per_scene})
  return sources['train'], sources['validation'], label_defs.CLASSES['synthetic']


def augment_scene(scene: dict, rng: np.random.Generator, params: AugmentParams) -> dict:
  xyz, features = augment(scene['xyz'], scene['features'], rng, params)
  return {**scene, 'xyz': xyz, 'features': features}


def make_batch(scenes: list, config, profile) -> tuple[dict, sparse.Capacities]:
  """Voxelized, padded model inputs plus per-point labels padded with the ignore label."""
  batch, caps = sparse.prepare_batch([(s['xyz'], s['features']) for s in scenes], config.data.voxel_size,
                                     profile, NUM_LEVELS, names=[s['scene_id'] for s in scenes])
  labels = np.full((caps.points,), label_defs.IGNORE_LABEL, np.int32)
  labels[:int(batch.point_valid.sum())] = np.concatenate([s['semantic'] for s in scenes])
  arrays = {k: getattr(batch, k) for k in MODEL_KEYS}
  arrays['labels'] = labels
  return arrays, caps


def fit_profile(scenes: list, config) -> sparse.BucketProfile:
  """Bucket profile fitted to a sample of scenes, with headroom for the rest."""
  vox = [sparse.voxelize_scene(s['xyz'], s['features'], config.data.voxel_size, s['scene_id']) for s in scenes]
  coords = np.concatenate([np.concatenate([np.full((len(v.coords), 1), b, np.int32), v.coords], 1)
                           for b, v in enumerate(vox)])
  counts = sparse.count_structure(coords, sum(len(v.point2voxel) for v in vox), NUM_LEVELS)
  return sparse.BucketProfile.from_counts(counts, headroom=config.buckets.headroom,
                                          growth=config.buckets.growth, min_voxels=config.buckets.min_voxels)


# --- model and steps ---------------------------------------------------------------------------

def make_model(config, num_classes: int) -> minkunet.MinkUNet:
  m = config.model
  spec = minkunet.backbone_spec(m.backbone, impl=tuple(m.impl) if not isinstance(m.impl, str) else m.impl)
  if m.get('width_scale', 1.0) != 1.0:
    spec = dataclasses.replace(spec, stem=max(4, int(spec.stem * m.width_scale)),
                               planes=tuple(max(4, int(p * m.width_scale)) for p in spec.planes))
  if m.get('chunk'):
    spec = dataclasses.replace(spec, chunk=m.chunk)
  dtype = jnp.bfloat16 if m.get('compute_dtype', 'float32') == 'bfloat16' else jnp.float32
  return minkunet.MinkUNet(num_classes=num_classes, spec=spec, dtype=dtype)


def make_optimizer(config, steps_per_epoch: int):
  o = config.optim
  boundaries = {int(e * steps_per_epoch): o.decay_factor for e in range(o.decay_every_epochs, 100000,
                                                                            o.decay_every_epochs)
                if e * steps_per_epoch < config.train.steps}
  schedule = optax.piecewise_constant_schedule(o.lr, boundaries)
  return optax.adam(schedule), schedule


def create_train_state(rng, model, tx, arrays: dict, caps) -> TrainState:
  @jax.jit
  def init(arrays):
    geom = sparse.geometry_of(arrays, caps, model.spec.chunk_sizes())
    return model.init(rng, arrays['features'], geom, train=False)

  variables = init(arrays)
  return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                           batch_stats=variables['batch_stats'])


@functools.partial(jax.jit, static_argnames=('caps', 'model'), donate_argnums=(0,))
def train_step(state: TrainState, arrays: dict, caps, model):
  geom = sparse.geometry_of(arrays, caps, model.spec.chunk_sizes())

  def loss_fn(params):
    out, updates = state.apply_fn({'params': params, 'batch_stats': state.batch_stats}, arrays['features'],
                                  geom, train=True, mutable=['batch_stats'])
    return supervised.cross_entropy(out['logits'], arrays['labels'], label_defs.IGNORE_LABEL), updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=updates['batch_stats'])
  metrics = {'loss': loss, 'grad_norm': optax.tree.norm(grads), 'needed': geom.needed}
  return state, metrics


@functools.partial(jax.jit, static_argnames=('caps', 'model'))
def eval_step(state: TrainState, arrays: dict, caps, model):
  geom = sparse.geometry_of(arrays, caps, model.spec.chunk_sizes())
  out = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats}, arrays['features'], geom,
                       train=False)
  return jnp.argmax(out['logits'], -1), geom.needed


# --- loop ----------------------------------------------------------------------------------------

def evaluate(state, scenes, config, profile, model, class_names) -> dict:
  """Whole scenes, every point: per-point predictions against per-point labels."""
  conf = np.zeros((len(class_names),) * 2, np.int64)
  for scene in scenes:
    arrays, caps = make_batch([scene], config, profile)
    pred, needed = eval_step(state, arrays, caps, model)
    sparse.check_capacity(needed, caps.voxels + caps.pairs)
    n = len(scene['semantic'])
    conf += semantic.confusion(np.asarray(pred)[:n], scene['semantic'], len(class_names), label_defs.IGNORE_LABEL)
  return semantic.summarize(conf, class_names)


def train_and_evaluate(config, workdir: str) -> dict:
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  writer = metric_writers.create_default_writer(str(workdir / 'tensorboard'), just_logging=jax.process_index() > 0)
  rng = np.random.default_rng(config.seed)

  train_scenes, val_scenes, class_names = load_scenes(config)
  profile = fit_profile([train_scenes[i] for i in range(config.train.batch_size)], config)
  model = make_model(config, len(class_names))
  steps_per_epoch = max(1, len(train_scenes) // config.train.batch_size)
  tx, schedule = make_optimizer(config, steps_per_epoch)
  arrays, caps = make_batch([train_scenes[i] for i in range(config.train.batch_size)], config, profile)
  state = create_train_state(jax.random.PRNGKey(config.seed), model, tx, arrays, caps)

  ckpt = ocp.CheckpointManager((workdir / 'checkpoints').absolute(),
                               options=ocp.CheckpointManagerOptions(max_to_keep=config.train.keep_checkpoints))
  start = 0
  if ckpt.latest_step() is not None:
    start = ckpt.latest_step()
    state = ckpt.restore(start, args=ocp.args.StandardRestore(state))
    logging.info('resumed from step %d', start)

  aug = AugmentParams.from_config(config.data.augment)
  t0, points = time.time(), 0
  for step in range(start + 1, config.train.steps + 1):
    picks = rng.choice(len(train_scenes), config.train.batch_size, replace=False)
    arrays, caps = make_batch([augment_scene(train_scenes[i], rng, aug) for i in picks], config, profile)
    state, metrics = train_step(state, arrays, caps, model)
    points += int(arrays['point_valid'].sum())
    if step % config.train.log_every == 0 or step == config.train.steps:
      metrics = jax.device_get(metrics)
      sparse.check_capacity(metrics.pop('needed'), caps.voxels + caps.pairs)
      if not np.isfinite(metrics['loss']):
        raise FloatingPointError(f'loss is {metrics["loss"]} at step {step}; the last good checkpoint is kept')
      elapsed = time.time() - t0
      writer.write_scalars(step, {**{k: float(v) for k, v in metrics.items()}, 'lr': float(schedule(step - 1)),
                                  'points_per_second': points / elapsed})
      t0, points = time.time(), 0
    if step % config.train.checkpoint_every == 0 or step == config.train.steps:
      ckpt.save(step, args=ocp.args.StandardSave(state))
  ckpt.wait_until_finished()

  summary = evaluate(state, val_scenes, config, profile, model, class_names)
  logging.info('validation, %d scenes:\n%s', len(val_scenes), semantic.format_table(summary))
  writer.write_scalars(config.train.steps, {'val/miou': summary['miou'],
                                            **{f'val/iou/{k}': v for k, v in summary['iou'].items() if v is not None}})
  writer.flush()
  (workdir / 'eval').mkdir(exist_ok=True)
  (workdir / 'eval' / 'metrics.json').write_text(json.dumps(summary, indent=2))
  return summary

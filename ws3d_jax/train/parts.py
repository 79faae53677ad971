"""The pieces a run is built from, each from its config section: backbone, model, objective,
optimiser and its schedule."""
from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import optax

from ws3d_jax.losses.contrast import ContrastParams
from ws3d_jax.losses.energy import EnergyParams
from ws3d_jax.losses.objective import Objective
from ws3d_jax.losses.schedule import Ramp
from ws3d_jax.models import minkunet
from ws3d_jax.models.ws3d import WS3DNet
from ws3d_jax.train.steps import AXIS



def backbone_of(model_config) -> minkunet.BackboneSpec:
  m = model_config
  spec = minkunet.backbone_spec(m.backbone, impl=m.impl if isinstance(m.impl, str) else tuple(m.impl))
  if m.width_scale != 1.0:
    spec = dataclasses.replace(spec, stem=max(4, int(spec.stem * m.width_scale)),
                               planes=tuple(max(4, int(p * m.width_scale)) for p in spec.planes))
  return dataclasses.replace(spec, chunk=m.chunk)


def compute_dtype(name: str):
  return {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[name]


def make_model(config, num_classes: int, bn_axis: str | None = AXIS) -> WS3DNet:
  m = config.model
  spec = backbone_of(m)
  last = spec.num_levels - 1
  stages = (last,) if config.loss.last_stage_only else tuple(range(last + 1))
  return WS3DNet(num_classes=num_classes, spec=spec, dtype=compute_dtype(m.compute_dtype),
                 bn_axis=bn_axis, embed_dim=m.embed_dim, contrast_stages=stages)


def make_objective(config, num_classes: int, total_steps: int = 0, axis_name: str | None = AXIS) -> Objective:
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


def epoch_steps(num_scenes: int, config) -> int:
  """Steps per epoch: one pass over the training scenes at ``train.batch_size``. It does not
  depend on the label ratio or on how the batch is split into labeled and unlabeled scenes, so
  a sup_only run (no unlabeled scenes) decays its learning rate at the same steps as WS3D."""
  return max(1, num_scenes // config.train.batch_size)


SCHEDULES = ('step', 'cosine', 'poly')


def make_optimizer(optim_config, total_steps: int, steps_per_epoch: int):
  """Adam with the learning-rate schedule ``optim.schedule``:

  * 'step' (the paper's): lr x decay_factor every decay_every_epochs epochs;
  * 'cosine': half a cosine from lr to 0 over the run (Pointcept's runs);
  * 'poly': lr (1 - step / total) ** poly_power, to 0 at the end (GuidedContrast, PointGroup).

  Returns (optax transformation, schedule). Equal settings give the same transformation object:
  it is part of the train state's static structure, so a resumed run in the same process (the
  tests) reuses the compiled step instead of compiling it again."""
  o = optim_config
  if o.schedule not in SCHEDULES:
    raise ValueError(f'optim.schedule={o.schedule!r}; one of {SCHEDULES}')
  if o.schedule == 'step':
    every = o.decay_every_epochs * steps_per_epoch
    boundaries = tuple(range(every, total_steps, every)) if every > 0 else ()
    return _adam(float(o.lr), 'step', boundaries, float(o.decay_factor), float(o.grad_clip))
  power = float(o.poly_power) if o.schedule == 'poly' else 0.0
  return _adam(float(o.lr), o.schedule, (max(1, int(total_steps)),), power, float(o.grad_clip))


@functools.lru_cache(maxsize=16)
def _adam(lr: float, kind: str, steps: tuple, factor: float, grad_clip: float):
  """``steps``: the decay boundaries ('step') or (total steps,); ``factor``: the decay factor
  ('step') or the polynomial's power ('poly')."""
  if kind == 'step':
    schedule = optax.piecewise_constant_schedule(lr, {s: factor for s in steps})
  elif kind == 'cosine':
    schedule = optax.cosine_decay_schedule(lr, decay_steps=steps[0])
  else:
    schedule = optax.polynomial_schedule(lr, 0.0, power=factor, transition_steps=steps[0])
  tx = optax.adam(schedule)
  if grad_clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
  return tx, schedule

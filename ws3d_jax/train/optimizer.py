"""Adam and its learning-rate schedule (``config.optim``, read by the run builder into an
``OptimSpec``)."""
from __future__ import annotations

import dataclasses
import functools

import optax

SCHEDULES = ('step', 'cosine', 'poly')


@dataclasses.dataclass(frozen=True)
class OptimSpec:
  lr: float = 1e-3
  schedule: str = 'step'  # one of SCHEDULES
  decay_factor: float = 0.2  # 'step': lr x decay_factor every decay_every_epochs epochs
  decay_every_epochs: int = 50
  poly_power: float = 0.9  # 'poly'
  grad_clip: float = 0.0  # 0: no clipping


def make_optimizer(o: OptimSpec, total_steps: int, steps_per_epoch: int):
  """Adam with the learning-rate schedule ``o.schedule``:

  * 'step' (the paper's): lr x decay_factor every decay_every_epochs epochs;
  * 'cosine': half a cosine from lr to 0 over the run (Pointcept's runs);
  * 'poly': lr (1 - step / total) ** poly_power, to 0 at the end (GuidedContrast, PointGroup).

  Returns (optax transformation, schedule). Equal settings give the same transformation object:
  it is part of the train state's static structure, so a resumed run in the same process (the
  tests) reuses the compiled step instead of compiling it again."""
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
  # Adam over one vector of all parameters: the same arithmetic element by element, in a handful
  # of kernels instead of a dozen per parameter array (211 of them in the main job's network);
  # the WS3D step compiles in 14 s instead of 17-21 (docs/benchmarks.md). The moments are then
  # one vector each in the checkpoint; older checkpoints, written leaf by leaf, are read into it
  # (checkpoints.vector_sources).
  return optax.flatten(tx), schedule

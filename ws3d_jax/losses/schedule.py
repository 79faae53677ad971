"""When the unlabeled terms switch on: a labeled-only warm-up, then a ramp to full weight.

METHOD.md leaves the schedule open. The field's semi-supervised codebases do not train on
unlabeled data from step 0: GuidedContrast runs ``prepare_iter`` supervised iterations first
(200 on ScanNet) or starts from a supervised checkpoint (SemanticKITTI), and temporal
ensembling / Mean Teacher ramp the unsupervised weight up with exp(-5 (1 - t)^2). A ``Ramp``
is that weight as a function of the optimiser step, computed inside the jitted step (no host
round trip, no recompile as it changes).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Ramp:
  warmup_steps: int = 0  # steps with weight 0 (labeled terms only)
  rampup_steps: int = 0  # then a sigmoid-shaped ramp from 0 to 1 over this many steps

  def __call__(self, step):
    """Weight in [0, 1] for the update that follows ``step`` completed steps."""
    step = jnp.asarray(step, jnp.float32)
    on = (step >= self.warmup_steps).astype(jnp.float32)
    if not self.rampup_steps:
      return on
    t = jnp.clip((step - self.warmup_steps) / self.rampup_steps, 0.0, 1.0)
    return on * jnp.exp(-5.0 * (1.0 - t) ** 2)

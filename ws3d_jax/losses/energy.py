"""The boundary-aware region energy of WS3D (METHOD.md, "Energy").

    E_sum = sum_i -log c_i
          + sum_{adjacent i<j} H_ij * ( w_ij [eps - ||p_i - p_j||]_+^2 + (1 - w_ij) ||p_i - p_j||^2 )
    H_ij  = [c_i > gamma and c_j > gamma]

Boundary pairs (w_ij = 1) are pushed at least eps apart in prediction space, other adjacent
pairs are pulled together; only pairs where both regions are confident take part. With
``normalize`` each sum is divided by its count (valid regions, valid pairs) so the loss does not
grow with the scene; METHOD.md asks for that and for it to be switchable.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class EnergyParams:
  eps: float = 0.5
  gamma: float = 0.8
  use_boundary: bool = True  # off: every w_ij = 0 (Table 5, "boundary labels")
  use_pairwise: bool = True  # off: the unary term alone (Table 5, "pairwise energy")
  use_confidence_mask: bool = True  # off: H_ij = 1 for every pair (Table 5, "H_ij in energy")
  normalize: bool = True


def region_energy(p, confidence, region_valid, pairs, pair_valid, pair_boundary, params: EnergyParams):
  """Returns (energy, terms dict). p (R, C) region class probabilities, confidence (R,),
  pairs (E, 2) region indices (padding rows may hold any index; pair_valid masks them),
  pair_boundary (E,) the w_ij in {0, 1}."""
  valid_r = region_valid.astype(jnp.float32)
  unary = -jnp.log(jnp.maximum(confidence, 1e-12)) * valid_r
  unary = unary.sum() / (jnp.maximum(valid_r.sum(), 1.0) if params.normalize else 1.0)

  r = p.shape[0]
  i, j = jnp.clip(pairs[:, 0], 0, r - 1), jnp.clip(pairs[:, 1], 0, r - 1)
  valid_e = pair_valid.astype(jnp.float32)
  dist2 = jnp.sum((p[i] - p[j]) ** 2, axis=-1)
  # sqrt has an infinite derivative at 0; pairs with identical predictions must not make NaNs.
  dist = jnp.sqrt(jnp.maximum(dist2, 1e-12))
  w = pair_boundary.astype(jnp.float32) if params.use_boundary else jnp.zeros_like(dist)
  if params.use_confidence_mask:
    h = jax.lax.stop_gradient(((confidence[i] > params.gamma) & (confidence[j] > params.gamma)).astype(jnp.float32))
  else:
    h = jnp.ones_like(dist)
  push = w * jnp.square(jnp.maximum(params.eps - dist, 0.0))
  pull = (1.0 - w) * dist2
  pairwise = (h * (push + pull) * valid_e).sum() / (jnp.maximum(valid_e.sum(), 1.0) if params.normalize else 1.0)
  if not params.use_pairwise:
    pairwise = jnp.zeros_like(pairwise)
  terms = {'energy_unary': unary, 'energy_pairwise': pairwise,
           'energy_active_pairs': (h * valid_e).sum()}
  return unary + pairwise, terms

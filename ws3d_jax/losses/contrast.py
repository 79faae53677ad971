"""Region-level contrast between two views (METHOD.md, "Multi-stage region contrast").

For an anchor region a of view 1, the positive is the same region in view 2, the negatives
N(a) are regions of view 2 whose label differs from a's:

    L = -(1/|A|) sum_a log( exp(f1(a).f2(a)/tau) / sum_{c in N(a) + {a}} exp(f1(a).f2(c)/tau) )

Unsupervised (unlabeled scenes): labels are each view's confident pseudo-labels and only
regions with confidence > gamma take part (the H mask). Supervised ("SCE", labeled scenes):
labels are the regions' ground-truth majority labels.

A batch can hold tens of thousands of regions, and the similarity matrix is quadratic, so at
most ``max_regions`` eligible regions are sampled per step (uniformly, without replacement);
the loss is the same estimator on the sample.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class ContrastParams:
  tau: float = 0.1
  gamma: float = 0.8
  use_confidence_mask: bool = True  # Table 5, "H_ij in contrast"
  same_scene_negatives: bool = False  # True: negatives only from the anchor's own scene
  max_regions: int = 2048


def contrast_loss(f1, f2, labels1, labels2, anchor_ok, candidate_ok, region_batch, rng, params: ContrastParams):
  """f1, f2 (R, D) L2-normalised region embeddings of the two views; labels (R,) int;
  anchor_ok / candidate_ok (R,) bool; region_batch (R,) scene index of each region.

  Returns (loss, number of anchors used)."""
  idx = _sample(anchor_ok | candidate_ok, params.max_regions, rng)
  f1, f2 = f1[idx], f2[idx]
  labels1, labels2, region_batch = labels1[idx], labels2[idx], region_batch[idx]
  anchor_ok, candidate_ok = anchor_ok[idx], candidate_ok[idx]

  sim = (f1 @ f2.T) / params.tau
  eye = jnp.eye(sim.shape[0], dtype=bool)
  negative = candidate_ok[None, :] & (labels2[None, :] != labels1[:, None]) & ~eye
  if params.same_scene_negatives:
    negative &= region_batch[:, None] == region_batch[None, :]
  negative = jax.lax.stop_gradient(negative)
  logits = jnp.where(negative | eye, sim, -jnp.inf)
  per_anchor = jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(sim)
  weight = anchor_ok.astype(jnp.float32)
  count = weight.sum()
  return (per_anchor * weight).sum() / jnp.maximum(count, 1.0), count


def _sample(eligible, k: int, rng):
  """Indices of up to k eligible rows (all rows when there are at most k); a static size k."""
  n = eligible.shape[0]
  if n <= k:
    return jnp.arange(n)
  scores = jnp.where(eligible, jax.random.uniform(rng, (n,)), -1.0)
  return jax.lax.top_k(scores, k)[1]


def unsupervised_masks(p1, c1, p2, c2, region_valid, params: ContrastParams):
  """Pseudo-labels and the H masks of the unlabeled branch."""
  labels1, labels2 = jnp.argmax(p1, -1), jnp.argmax(p2, -1)
  if params.use_confidence_mask:
    confident1, confident2 = region_valid & (c1 > params.gamma), region_valid & (c2 > params.gamma)
  else:
    confident1 = confident2 = region_valid
  return labels1, labels2, confident1 & confident2, confident2

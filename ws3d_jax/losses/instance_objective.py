"""PointGroup's losses, and the instance objective: the WS3D objective on the semantic logits
plus the offset and ScoreNet terms on labeled scenes (METHOD.md, "Instance segmentation").

    L = WS3D objective (CE, supervised region contrast, energy, region contrast)
      + w_offset * mean_v (L1(view v) + direction(view v))      labeled instance points
      + w_score  * BCE(ScoreNet logit, soft IoU target)         proposals of labeled scenes

Offsets and their targets live in each view's (augmented) coordinates, which is why the
Batcher computes the targets per view.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax

from ws3d_jax.losses.objective import Objective
from ws3d_jax.losses.targets import Targets


def offset_losses(pred, target, valid):
  """(L1, direction) of PointGroup: the mean over instance points of sum_xyz |o - t|, and of
  -cos(o, t). ``valid``: points that belong to a ground-truth instance."""
  w = valid.astype(jnp.float32)
  n = jnp.maximum(w.sum(), 1.0)
  l1 = (jnp.abs(pred - target).sum(-1) * w).sum() / n
  direction = -((_unit(pred) * _unit(target)).sum(-1) * w).sum() / n
  return l1, direction


def _unit(v):
  """v / |v|, and 0 for v = 0 with a zero gradient there: the norm's own gradient at 0 is NaN,
  and an offset head whose hidden units are all off for a voxel predicts exactly 0 (its bias)."""
  squared = jnp.sum(v * v, axis=-1, keepdims=True)
  nonzero = squared > 0
  norm = jnp.sqrt(jnp.where(nonzero, squared, 1.0))
  return jnp.where(nonzero, v / (norm + 1e-8), 0.0)


def score_targets(iou, fg: float = 0.75, bg: float = 0.25):
  """PointGroup's soft ScoreNet target from a proposal's best IoU with the ground truth: 0 below
  ``bg``, 1 above ``fg``, linear in between."""
  return jnp.clip((iou - bg) / (fg - bg), 0.0, 1.0)


def score_loss(logits, targets, valid):
  w = valid.astype(jnp.float32)
  return (optax.sigmoid_binary_cross_entropy(logits, targets) * w).sum() / jnp.maximum(w.sum(), 1.0)


@dataclasses.dataclass(frozen=True)
class InstanceObjective:
  semantic: Objective
  w_offset: float = 1.0
  w_score: float = 1.0

  @property
  def num_classes(self) -> int:
    return self.semantic.num_classes

  def __call__(self, outputs, geoms, targets: Targets, rng, step=None):
    loss, terms = self.semantic(outputs, geoms, targets, rng, step)
    inst = targets.instances
    valid = inst.id > 0
    l1 = direction = 0.0
    for o, target in zip(outputs, inst.offsets):
      a, b = offset_losses(o.offsets, target, valid)
      l1, direction = l1 + a / len(outputs), direction + b / len(outputs)
    terms.update(offset_l1=l1, offset_direction=direction)
    loss += self.w_offset * (l1 + direction)
    if self.w_score:
      terms['score'] = score_loss(outputs[0].proposal_scores, inst.proposal_target, inst.proposal_valid)
      terms['proposals'] = inst.proposal_valid.sum()
      loss += self.w_score * terms['score']
    return loss, terms

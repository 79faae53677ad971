"""The joint WS3D objective over a batch of labeled and unlabeled scenes, two views each
(METHOD.md, "Unlabeled branch" and "Labeled branch"):

    L = w_ce  * mean_v CE(view v)                              labeled points (the paper's "SCE" branch)
      + w_sup_contrast * sum_m SC^m                            labeled regions, ground-truth labels
      + ramp(step) * w_energy * (E_sum,view1 + E_sum,view2)    unlabeled regions
      + ramp(step) * w_contrast * sum_m L^m                    unlabeled regions, pseudo-labels

m runs over the contrasted encoder stages (all five, or the last one only). SC^m, a region
contrast with ground-truth labels, is this project's reading of Figure 2's caption, not one of
the paper's formulas (METHOD.md, "Labeled branch"). ``ramp`` (losses/schedule.py) holds the
unlabeled terms off during a labeled-only warm-up and then ramps them in. Every term can be
switched off, which is how the ablations of the paper's Table 5 are run. An ``Objective`` is a
frozen dataclass, so it is hashable and can be a static argument of the jitted step.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ws3d_jax.constants import IGNORE_LABEL
from ws3d_jax.losses import contrast, energy, regions, supervised
from ws3d_jax.losses.schedule import Ramp
from ws3d_jax.losses.targets import Targets


@dataclasses.dataclass(frozen=True)
class Objective:
  num_classes: int
  w_ce: float = 1.0
  w_sup_contrast: float = 1.0
  w_energy: float = 1.0
  w_contrast: float = 1.0
  energy: energy.EnergyParams = energy.EnergyParams()
  contrast: contrast.ContrastParams = contrast.ContrastParams()
  ramp: Ramp = Ramp()
  ignore_label: int = IGNORE_LABEL
  # The data-parallel axis the step averages gradients over: the cross-entropy is normalised over
  # the whole batch's labeled points (supervised.cross_entropy). None outside a pmap.
  axis_name: str | None = None

  def __call__(self, outputs, geoms, targets: Targets, rng, step=None):
    """outputs / geoms: one model output (models.minkunet.NetOutputs) and Geometry per view; ``step``: optimiser steps
    done so far (None: the unlabeled terms at full weight). Returns (loss, terms)."""
    terms = {}
    terms['ce'] = sum(supervised.cross_entropy(o.logits, targets.labels, self.ignore_label, self.axis_name)
                      for o in outputs) / len(outputs)
    loss = self.w_ce * terms['ce']
    if not (self.w_sup_contrast or self.w_energy or self.w_contrast):
      return loss, terms
    unlabeled_weight = jnp.float32(1.0) if step is None else self.ramp(step)
    terms['unlabeled_weight'] = unlabeled_weight

    r = targets.regions
    labeled, unlabeled = r.valid & r.labeled, r.valid & ~r.labeled
    preds = [regions.region_predictions(o.logits, r.id, r.count) for o in outputs]

    if self.w_energy:
      first = jnp.clip(r.pairs[:, 0], 0, r.count - 1)
      pair_ok = r.pair_valid & unlabeled[first]
      energies = []
      for v, (p, c) in enumerate(preds):
        e, e_terms = energy.region_energy(p, c, unlabeled, r.pairs, pair_ok, r.pair_boundary, self.energy)
        energies.append(e)
        terms.update({f'{k}_view{v}': x for k, x in e_terms.items()})
      terms['energy'] = sum(energies)
      loss += unlabeled_weight * self.w_energy * terms['energy']

    if self.w_contrast or self.w_sup_contrast:
      loss += self._contrast_terms(outputs, geoms, targets, preds, labeled, unlabeled, rng, terms, unlabeled_weight)
    return loss, terms

  def _contrast_terms(self, outputs, geoms, targets, preds, labeled, unlabeled, rng, terms, unlabeled_weight):
    r = targets.regions
    stages = _stages_of(outputs[0])
    (p0, c0), (p1, c1) = preds
    pseudo0, pseudo1, anchor_ok, candidate_ok = contrast.unsupervised_masks(p0, c0, p1, c1, unlabeled, self.contrast)
    truth = regions.region_majority_labels(targets.labels, r.id, r.count, self.num_classes, self.ignore_label)
    truth_ok = labeled & (truth != self.ignore_label)
    total_unsup, total_sup = 0.0, 0.0
    for k, stage in enumerate(stages):
      f0, f1 = (regions.region_embeddings(o.embeddings[k], g.point2voxel[stage], r.id, r.count)
                for o, g in zip(outputs, geoms))
      rng, r_unsup, r_sup = jax.random.split(rng, 3)
      if self.w_contrast:
        l_u, n_u = contrast.contrast_loss(f0, f1, pseudo0, pseudo1, anchor_ok, candidate_ok, r.scene, r_unsup,
                                          self.contrast)
        terms[f'contrast_stage{stage}'] = l_u
        terms['contrast_anchors'] = n_u
        total_unsup += l_u
      if self.w_sup_contrast:
        l_s, n_s = contrast.contrast_loss(f0, f1, truth, truth, truth_ok, truth_ok, r.scene, r_sup, self.contrast)
        terms[f'sup_contrast_stage{stage}'] = l_s
        terms['sup_contrast_anchors'] = n_s
        total_sup += l_s
    terms['contrast'], terms['sup_contrast'] = jnp.asarray(total_unsup), jnp.asarray(total_sup)
    return unlabeled_weight * self.w_contrast * terms['contrast'] + self.w_sup_contrast * terms['sup_contrast']


def _stages_of(output) -> tuple:
  stages = output.contrast_stages
  if not stages:
    raise ValueError('the model output has no contrast_stages; the region contrast needs WS3DNet')
  return stages


@dataclasses.dataclass(frozen=True)
class BoundaryObjective:
  """Focal loss of the boundary network on labeled points (``targets.labels`` hold 0/1 boundary
  targets, the ignore label elsewhere)."""
  alpha: float = 2.0
  ignore_label: int = IGNORE_LABEL

  def __call__(self, outputs, geoms, targets: Targets, rng, step=None):
    del geoms, rng, step
    valid = targets.labels != self.ignore_label
    boundary = targets.labels == 1
    loss = sum(supervised.focal_loss(o.logits[:, 0], boundary, valid, self.alpha) for o in outputs) / len(outputs)
    return loss, {'focal': loss}

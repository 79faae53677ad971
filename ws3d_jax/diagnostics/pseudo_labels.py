"""How good are a model's confident region pseudo-labels on the unlabeled scenes?

The unlabeled branch trusts regions whose confidence exceeds gamma: the energy pulls their
neighbours towards them and the contrast uses their labels to pick negatives. When those
pseudo-labels are wrong, WS3D reinforces the errors, so their coverage and accuracy (against
the ground truth that training never saw) is the first thing to look at when WS3D does not beat
sup_only.

    python -m ws3d_jax.diagnostics.pseudo_labels --workdir=runs/x --config=configs/scannet.py:10pct [--config.x=y]
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ws3d_jax.constants import IGNORE_LABEL
from ws3d_jax.data import sources, splits
from ws3d_jax.data.pipeline import subset_scene
from ws3d_jax.train import run_builder
from ws3d_jax.train.checkpoints import saved_variables
from ws3d_jax.train.evaluate import scene_logits


def region_pseudo_labels(point_logits: np.ndarray, region_id: np.ndarray, num_regions: int):
  """(label, confidence) per region: max-pool the logits over the region, softmax, argmax."""
  pooled = np.full((num_regions, point_logits.shape[1]), -np.inf)
  np.maximum.at(pooled, region_id, point_logits)
  p = np.exp(pooled - pooled.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  return p.argmax(1), p.max(1)


def majority_labels(labels: np.ndarray, region_id: np.ndarray, num_regions: int, num_classes: int) -> np.ndarray:
  known = labels != IGNORE_LABEL
  hist = np.zeros((num_regions, num_classes), np.int64)
  np.add.at(hist, (region_id[known], labels[known]), 1)
  return np.where(hist.sum(1) > 0, hist.argmax(1), IGNORE_LABEL)


def quality(point_logits, region_id, labels, num_classes: int, gamma: float) -> dict:
  """Counts for one scene: regions, confident regions, and how many of those are right."""
  r = int(region_id.max()) + 1
  pseudo, conf = region_pseudo_labels(point_logits, region_id, r)
  truth = majority_labels(labels, region_id, r, num_classes)
  known = truth != IGNORE_LABEL
  confident = known & (conf > gamma)
  return {'regions': int(known.sum()), 'confident': int(confident.sum()),
          'confident_correct': int((confident & (pseudo == truth)).sum()),
          'all_correct': int((known & (pseudo == truth)).sum())}


def summarize(counts: list[dict]) -> dict:
  total = {k: sum(c[k] for c in counts) for k in counts[0]}
  return {**total, 'coverage': total['confident'] / max(total['regions'], 1),
          'confident_accuracy': total['confident_correct'] / max(total['confident'], 1),
          'region_accuracy': total['all_correct'] / max(total['regions'], 1)}


def unlabeled_quality(variables, data, voxel_size: float, gamma: float, profile, model, max_scenes: int = 0) -> dict:
  """Pseudo-label coverage and accuracy of a model over the unlabeled scenes of a run (the
  first ``max_scenes`` of them; 0: all), against their hidden ground truth; ``gamma``: the
  confidence a region's pseudo-label needs (loss.gamma)."""
  counts = []
  count = len(data.unlabeled) if not max_scenes else min(max_scenes, len(data.unlabeled))
  for i in range(count):
    entry = data.unlabeled.entries[i]
    source, index = data.unlabeled.lookup[entry['scene']]
    scene = data.unlabeled[i]
    truth = source[index]
    if entry.get('cut') is not None:
      truth = subset_scene(truth, splits.apply_cut(truth['xyz'], entry['cut']))
    logits = scene_logits(variables, scene, voxel_size, profile, model)
    counts.append(quality(logits, scene['region_id'], truth['semantic'], len(data.class_names), gamma))
  return summarize(counts)


def main(argv):
  del argv
  from absl import flags  # noqa: PLC0415

  config, workdir = flags.FLAGS.config, Path(flags.FLAGS.workdir)
  data = sources.load_experiment(run_builder.data_spec(config), workdir)
  run = run_builder.build(config, data, one_device=True)
  model, profile = run.model, run.batcher.profile
  variables, step = saved_variables(workdir, flags.FLAGS.step)
  quality_now = unlabeled_quality(variables, data, config.data.voxel_size, config.loss.gamma, profile, model)
  print(json.dumps({'step': step, **quality_now}, indent=2))


if __name__ == '__main__':
  from absl import app, flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', None, 'The run\'s config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'The run\'s workdir.')
  flags.DEFINE_integer('step', 0, 'The checkpoint to read (default: the latest).')
  app.run(main)

"""The boundary network alone, at the label-efficiency benchmark's scale: how good are its points?

    python -m ws3d_jax.bench.boundary_net --variant=steps600 [--ratio=5 --seed=0 --room_seed=0]
        [--results=docs/results/boundary/room0]

Trains the boundary network of one benchmark split (ratio, seed) with the variant's settings
and reports, on the validation rooms (never trained on): precision, recall and F1 at the
threshold the run chooses (the F1-maximising one on the labeled scenes), and the best F1 any
threshold reaches there (the oracle), which tells a weak network from a badly placed threshold.
One small JSON record per variant under --results. Variants are named settings of
``config.boundary`` (VARIANTS below); choose on room seed 0 only.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

# 'SUP_ONLY': the sup_only run of the split in --le_out, at its warm-up step (where WS3D starts).
VARIANTS = {
    'base': {},  # the benchmark's: 150 steps, minkunet14 at width 0.25 (the main network's), batch 2
    'init_sup': {'init_from': 'SUP_ONLY'},
    'init_sup_steps600': {'init_from': 'SUP_ONLY', 'steps': 600},
    'init_sup_steps2000': {'init_from': 'SUP_ONLY', 'steps': 2000},
    'steps600': {'steps': 600},
    'steps1500': {'steps': 1500},
    'width05_steps600': {'width_scale': 0.5, 'steps': 600},
    'alpha0_steps600': {'focal_alpha': 0.0, 'steps': 600},
}


def full_scale_hash(room_seed: int) -> str:
  """The settings hash of the benchmark's FULL scale on these rooms: the folder of its runs."""
  from ws3d_jax.bench import label_efficiency as le  # noqa: PLC0415
  return le.settings_hash({'room_seed': room_seed, 'scale': dataclasses.asdict(le.FULL), 'metric': 'miou'})


def study(variant: str, ratio: int, seed: int, room_seed: int, workdir: Path, le_out: Path) -> dict:
  import numpy as np  # noqa: PLC0415
  from clu import metric_writers  # noqa: PLC0415

  from ws3d_jax.bench import label_efficiency as le  # noqa: PLC0415
  from ws3d_jax.constants import IGNORE_LABEL  # noqa: PLC0415
  from ws3d_jax.data import sources  # noqa: PLC0415
  from ws3d_jax.train import boundary_network, run_builder  # noqa: PLC0415
  from ws3d_jax.train.evaluate import scene_logits  # noqa: PLC0415

  config = le.run_config(ratio, 'ws3d', seed, le.FULL, room_seed)
  for key, value in VARIANTS[variant].items():
    config.boundary[key] = value
  if config.boundary.init_from == 'SUP_ONLY':
    config.boundary.init_from = str(le_out / full_scale_hash(room_seed) / 'semantic' / f'r{ratio}_s{seed}' / 'sup_only')
    config.boundary.init_step = le.warmup_step(config)
  config.boundary.quality_scenes = config.data.num_val
  data = sources.load_experiment(run_builder.data_spec(config), workdir)
  spec = run_builder.boundary_spec(config)
  t0 = time.time()
  variables, model, profile = boundary_network.train_boundary_net(spec, data, metric_writers.MultiWriter([]))
  train_seconds = time.time() - t0
  predict = lambda scene: scene_logits(variables, scene, config.data.voxel_size, profile, model)[:, 0]
  threshold = boundary_network.decision_threshold(spec.threshold, predict, data.labeled)
  quality = boundary_network.boundary_quality(predict, threshold, data, spec.quality_scenes, config.data.voxel_size)
  logits, truth = [], []
  for i in range(len(data.eval_scenes)):
    scene = data.eval_scenes[i]
    known = scene['semantic'] != IGNORE_LABEL
    logits.append(predict(scene)[known])
    truth.append(np.asarray(scene['boundary'], bool)[known])
  logits, truth = np.concatenate(logits), np.concatenate(truth)
  oracle = boundary_network.f1_threshold(logits, truth)
  pred = logits > oracle
  tp = int((pred & truth).sum())
  best_f1 = 2 * tp / max(int(pred.sum()) + int(truth.sum()), 1)
  return {'variant': variant, 'settings': config.boundary.to_dict(), 'ratio': ratio, 'seed': seed,
          'room_seed': room_seed, 'labeled_scenes': len(data.labeled), 'val_scenes': len(data.eval_scenes),
          'at_chosen_threshold': quality, 'oracle_threshold_logit': oracle, 'oracle_f1': best_f1,
          'train_seconds': train_seconds}


def semantic_reference(ratio: int, seed: int, room_seed: int, arm: str, workdir: Path, le_out: Path) -> dict:
  """What the boundary rule gives on the validation rooms when applied to a finished benchmark
  run's predicted labels (``arm``: 'sup_only' or 'ws3d', its final checkpoint): how good boundary
  points can be, knowing the classes as well as that network does."""
  import numpy as np  # noqa: PLC0415

  from ws3d_jax.bench import label_efficiency as le  # noqa: PLC0415
  from ws3d_jax.constants import IGNORE_LABEL  # noqa: PLC0415
  from ws3d_jax.data import build, sources  # noqa: PLC0415
  from ws3d_jax.evaluation.boundary import BoundaryCounts, boundary_counts  # noqa: PLC0415
  from ws3d_jax.geometry.boundary import label_boundaries  # noqa: PLC0415
  from ws3d_jax.geometry.preprocess import default_params  # noqa: PLC0415
  from ws3d_jax.train import run_builder  # noqa: PLC0415
  from ws3d_jax.train.checkpoints import saved_variables  # noqa: PLC0415
  from ws3d_jax.train.evaluate import scene_logits  # noqa: PLC0415

  config = le.run_config(ratio, arm, seed, le.FULL, room_seed)
  finished = le_out / full_scale_hash(room_seed) / 'semantic' / f'r{ratio}_s{seed}' / arm
  data = sources.load_experiment(run_builder.data_spec(config), workdir)
  run = run_builder.build(config, data, one_device=True)
  model, profile = run.model, run.batcher.profile
  variables, _ = saved_variables(finished, config.train.steps)
  # The rule the data set's ground truth was made with (its builder's preprocessing parameters).
  rule = default_params(build.builder_class(config.data.name).DATASET)
  counts = BoundaryCounts()
  for i in range(len(data.eval_scenes)):
    scene = data.eval_scenes[i]
    predicted = scene_logits(variables, scene, config.data.voxel_size, profile, model).argmax(-1)
    known = scene['semantic'] != IGNORE_LABEL
    pred = label_boundaries(scene['xyz'], np.where(known, predicted, IGNORE_LABEL), IGNORE_LABEL,
                            rule.boundary_k, rule.boundary_radius)[known]
    truth = np.asarray(scene['boundary'], bool)[known]
    counts += boundary_counts(np.asarray(scene['xyz'])[known], pred, truth, config.data.voxel_size)
  return {'variant': f'semantic_reference_{arm}', 'run': str(finished), 'ratio': ratio, 'seed': seed,
          'room_seed': room_seed, 'val_scenes': len(data.eval_scenes),
          'at_chosen_threshold': {**counts.scores(), 'tolerance': config.data.voxel_size}}


def main(argv):
  del argv
  from absl import flags  # noqa: PLC0415

  from ws3d_jax import files  # noqa: PLC0415
  from ws3d_jax.bench.label_efficiency import commit_record, configure_xla  # noqa: PLC0415
  f = flags.FLAGS
  configure_xla()
  from ws3d_jax import runtime  # noqa: PLC0415
  runtime.configure()
  workdir = Path(f.out) / f'r{f.ratio}_s{f.seed}_room{f.room_seed}'
  if f.variant.startswith('semantic_reference_'):
    arm = f.variant[len('semantic_reference_'):]
    record = semantic_reference(f.ratio, f.seed, f.room_seed, arm, workdir, Path(f.le_out))
  else:
    record = study(f.variant, f.ratio, f.seed, f.room_seed, workdir, Path(f.le_out))
  logging.info('%s', json.dumps(record))
  print(json.dumps({k: record.get(k) for k in ('variant', 'oracle_f1', 'at_chosen_threshold')}, indent=1))
  if f.results:
    # The name carries the benchmark scale's hash: a reference or an init_sup variant reads that
    # scale's runs. (Records of the 1500-step scale, written before, carry none.)
    path = Path(f.results) / f'{f.variant}__r{f.ratio}_s{f.seed}_room{f.room_seed}__{full_scale_hash(f.room_seed)}.json'
    files.write_json(path, record)
    commit_record(path, f'boundary network {f.variant}')


if __name__ == '__main__':
  from absl import app, flags

  flags.DEFINE_enum('variant', 'base', list(VARIANTS) + ['semantic_reference_sup_only', 'semantic_reference_ws3d'],
                    'Settings of config.boundary to study; semantic_reference_<arm>: the boundary rule applied '
                    "to a finished benchmark run's predicted labels.")
  flags.DEFINE_integer('ratio', 5, 'Label ratio (percent) of the benchmark split.')
  flags.DEFINE_integer('seed', 0, 'Seed of the split and the run.')
  flags.DEFINE_integer('room_seed', 0, 'Room seed offset (0: the rooms choices are made on).')
  flags.DEFINE_string('out', 'runs/boundary_net', 'Workdir root (the split files).')
  flags.DEFINE_string('results', '', 'A folder for the JSON record of the variant (committed).')
  flags.DEFINE_string('le_out', 'runs/le_room0', "The label-efficiency benchmark's --out (its sup_only runs).")
  app.run(main)

"""Checks of a config before anything runs: a wrong value fails at start with what to do."""
from __future__ import annotations

from pathlib import Path

from ws3d_jax.data import datasets
from ws3d_jax.models import minkunet
from ws3d_jax.train import optimizer, tasks

EXPORT_FORMATS = ('official', 'ply')


def validate_config(config) -> None:
  d, t, l = config.data, config.train, config.loss
  datasets.get(d.name)
  tasks.get(config.task)
  if not 0 < d.label_ratio <= 1:
    raise ValueError(f'data.label_ratio={d.label_ratio} is impossible: it is the labeled fraction of the training '
                     'points, in (0, 1]; use a config token such as 5pct or --config.data.label_ratio=0.05')
  if d.manual_dir and not Path(d.manual_dir).expanduser().is_dir():
    raise FileNotFoundError(f'data.manual_dir={d.manual_dir} is not a directory; point it at the downloaded '
                            f'{d.name} data set')
  if d.split_file and not Path(d.split_file).is_file():
    raise FileNotFoundError(f'data.split_file={d.split_file} does not exist')
  if d.voxel_size <= 0:
    raise ValueError(f'data.voxel_size must be positive, got {d.voxel_size}')
  if t.batch_size < 1:
    raise ValueError(f'train.batch_size must be at least 1, got {t.batch_size}')
  if not config.optim.lr > 0:
    raise ValueError(f'optim.lr must be positive, got {config.optim.lr} (a negative rate climbs the loss)')
  if t.labeled_batch < 1:
    raise ValueError(f'train.labeled_batch must be at least 1, got {t.labeled_batch}')
  if t.unlabeled_batch < 0:
    raise ValueError(f'train.unlabeled_batch must be >= 0, got {t.unlabeled_batch}')
  if not t.unlabeled_batch and (l.w_energy or (l.w_contrast and l.region_contrast)):
    raise ValueError('train.unlabeled_batch is 0 but the energy or region contrast is on: they train on unlabeled '
                     'scenes; set train.unlabeled_batch, or use the sup_only token')
  if t.unlabeled_batch and not (l.w_energy or (l.w_contrast and l.region_contrast)):
    raise ValueError(f'train.unlabeled_batch={t.unlabeled_batch} but no loss trains on unlabeled scenes (a sup_only '
                     'run): they would only cost time and shift the BatchNorm statistics; set train.unlabeled_batch=0')
  if t.unlabeled_batch and t.batch_size != t.labeled_batch + t.unlabeled_batch:
    # A step draws labeled_batch + unlabeled_batch scenes; batch_size only sets the epoch length.
    raise ValueError(f'train.batch_size={t.batch_size} but a step draws train.labeled_batch={t.labeled_batch} + '
                     f'train.unlabeled_batch={t.unlabeled_batch} scenes; set those two (batch_size is their sum)')
  if t.batch_size < t.labeled_batch:
    raise ValueError(f'train.batch_size={t.batch_size} is below train.labeled_batch={t.labeled_batch}; a sup_only run '
                     'keeps the batch_size of its WS3D counterpart (the epoch length) and draws labeled_batch scenes')
  if t.steps < 0 or (not t.steps and t.epochs <= 0):
    raise ValueError(f'set train.steps > 0 or train.epochs > 0 (got steps={t.steps}, epochs={t.epochs})')
  if t.checkpoint_minutes < 0:
    raise ValueError(f'train.checkpoint_minutes must be >= 0 (0: off), got {t.checkpoint_minutes}')
  for name in ('log_every', 'checkpoint_every', 'keep_checkpoints'):
    if t[name] < 1:
      raise ValueError(f'train.{name} must be at least 1, got {t[name]}')
  if config.model.backbone not in minkunet.PRESETS:
    raise ValueError(f'model.backbone={config.model.backbone!r}; one of {sorted(minkunet.PRESETS)}')
  if config.optim.schedule not in optimizer.SCHEDULES:
    raise ValueError(f'optim.schedule={config.optim.schedule!r}; one of {optimizer.SCHEDULES}')
  if config.model.compute_dtype not in ('float32', 'bfloat16'):
    raise ValueError(f'model.compute_dtype must be float32 or bfloat16, got {config.model.compute_dtype!r}')
  unknown = set(config.eval.export) - set(EXPORT_FORMATS)
  if unknown:
    raise ValueError(f'eval.export: unknown format(s) {sorted(unknown)}; known: {EXPORT_FORMATS}')
  if not 0 < l.gamma < 1 or l.tau <= 0 or l.eps <= 0:
    raise ValueError(f'loss.gamma must be in (0, 1), loss.tau and loss.eps positive; got gamma={l.gamma}, '
                     f'tau={l.tau}, eps={l.eps}')
  if not 0 <= config.boundary.threshold < 1:
    raise ValueError(f'boundary.threshold is a probability in (0, 1), or 0 for the F1-maximising threshold on the '
                     f'labeled scenes; got {config.boundary.threshold}')
  if not (0 <= l.warmup <= 1 and 0 <= l.rampup <= 1 and l.warmup + l.rampup <= 1):
    raise ValueError(f'loss.warmup and loss.rampup are fractions of the steps (each in [0, 1], together at most 1); '
                     f'got warmup={l.warmup}, rampup={l.rampup}')
  if t.init_from and not (Path(t.init_from) / 'checkpoints').is_dir():
    raise FileNotFoundError(f'train.init_from={t.init_from} has no checkpoints/ folder; point it at the workdir of a '
                            'finished run (typically the sup_only run of the same split)')
  b = config.boundary
  if b.init_from and not (Path(b.init_from) / 'checkpoints').is_dir():
    raise FileNotFoundError(f'boundary.init_from={b.init_from} has no checkpoints/ folder; point it at the workdir of '
                            'a run of the same backbone (typically the sup_only run of the same split)')
  if config.task == 'instance':
    validate_instance(config)


def validate_instance(config) -> None:
  i = config.instance
  if i.cluster_radius <= 0 or i.shift_radius <= 0:
    raise ValueError(f'instance.cluster_radius and instance.shift_radius must be positive metres, got '
                     f'{i.cluster_radius} and {i.shift_radius}')
  if not 0 <= i.score_start < 1:
    raise ValueError(f'instance.score_start is the fraction of the steps before the ScoreNet trains, in [0, 1); '
                     f'got {i.score_start}')
  if i.max_proposals < 1 or i.cluster_min_points < 1:
    raise ValueError(f'instance.max_proposals and instance.cluster_min_points must be at least 1, got '
                     f'{i.max_proposals} and {i.cluster_min_points}')
  if not 0 <= i.score_bg < i.score_fg <= 1:
    raise ValueError(f'instance.score_bg < instance.score_fg in [0, 1] is needed, got {i.score_bg}, {i.score_fg}')

"""What a rerun of a workdir may change: its config against the one the workdir's checkpoints were
trained with (``<workdir>/config_train.json``).

A resumed run with another model width used to call both checkpoints damaged, set them aside
and train from step 1; one with another learning rate went on without a word. Now a change to
anything that shapes the model, the data, the split or the objective stops the run before it
touches the workdir, naming the fields and their two values; ``train.resume_changes`` (fields,
or ``all``) accepts them explicitly, and ``<workdir>/resumes.jsonl`` records what was accepted.
The fields below only say how long to train, how often to log, save and evaluate, where to read
the data from and how the convolution is computed: changed, they are accepted with one line (docs/training.md, "Resuming").
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ws3d_jax import files

# Field names, or prefixes ending in '.', that a resumed run may change.
SAFE_ON_RESUME = ('train.steps', 'train.epochs', 'train.log_every', 'train.eval_every', 'train.checkpoint_every',
                  'train.checkpoint_minutes', 'train.keep_checkpoints', 'train.resume_changes', 'train.init_from',
                  'train.init_step', 'data.num_threads', 'data.data_dir', 'data.manual_dir', 'eval.',
                  # how the convolution is computed, not what: the same parameters, the same function
                  'model.impl', 'model.chunk')
# What --mode=eval needs to agree with the training run: the model and the data it reads.
MATTERS_FOR_EVAL = ('task', 'model.', 'data.name', 'data.voxel_size', 'data.augment.colour_features')


class ConfigChanged(ValueError):
  """A rerun of a workdir with a config that would not continue the run that is there."""


def flatten(tree: dict, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      out.update(flatten(value, name + '.'))
    else:
      out[name] = value
  return out


def differences(before: dict, now: dict) -> dict:
  """{field: (value before, value now)} over the fields both configs have (a field added or
  removed by a newer ws3d-jax is not a change of the run)."""
  a, b = flatten(before), flatten(now)
  return {k: (a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k] != b[k]}


def _named(field: str, names) -> bool:
  return any(field == n or (n.endswith('.') and field.startswith(n)) for n in names)


def check(workdir: Path, config, mode: str, has_checkpoints: bool) -> None:
  """Raises ConfigChanged when ``config`` changes what the workdir's run was trained with; logs the
  safe changes and the accepted ones (and records the accepted ones in resumes.jsonl)."""
  record = Path(workdir) / 'config_train.json'
  if not has_checkpoints or not record.is_file():
    return  # nothing to continue: a new run (or one that died before its first checkpoint)
  try:
    before = json.loads(record.read_text())
  except (OSError, ValueError):
    logging.warning('%s cannot be read: the config of the run in this workdir cannot be checked', record)
    return
  now = json.loads(config.to_json_best_effort())
  changed = differences(before, now)
  if mode == 'eval':
    changed = {k: v for k, v in changed.items() if _named(k, MATTERS_FOR_EVAL) and not _named(k, SAFE_ON_RESUME)}
  else:
    safe = {k: v for k, v in changed.items() if _named(k, SAFE_ON_RESUME)}
    if safe:
      logging.info('resuming with %s (safe to change on resume)', _listing(safe))
    changed = {k: v for k, v in changed.items() if k not in safe}
  if not changed:
    return
  allowed = [f.strip() for f in str(config.train.get('resume_changes', '')).split(',') if f.strip()]
  refused = {k: v for k, v in changed.items() if 'all' not in allowed and k not in allowed}
  if refused:
    what = 'evaluate' if mode == 'eval' else 'continue'
    raise ConfigChanged(
        f'{workdir} holds a run trained with other settings: {_listing(refused)}; this config would not {what} it. '
        f'Use a new --workdir, or accept the change with --config.train.resume_changes={",".join(refused)}')
  logging.warning('resuming with changed %s (accepted by train.resume_changes; recorded in resumes.jsonl)',
                  _listing(changed))
  line = {'time': time.strftime('%Y-%m-%dT%H:%M:%S'), 'mode': mode,
          'changed': {k: {'before': a, 'now': b} for k, (a, b) in changed.items()}}
  path = Path(workdir) / 'resumes.jsonl'
  files.write_text(path, (path.read_text() if path.is_file() else '') + json.dumps(line) + '\n')


def _listing(changed: dict) -> str:
  return ', '.join(f'{k} {_short(a)} -> {_short(b)}' for k, (a, b) in changed.items())


def _short(value) -> str:
  text = json.dumps(value)
  return text if len(text) <= 40 else text[:37] + '...'

"""A run's checkpoints: the last N periodic ones and the best one by the task's metric (orbax),
each with the checksums of its arrays (checksums.py), what a rerun of a finished run finds, and
the state another run's checkpoint starts from."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import re
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from ws3d_jax import hosts
from ws3d_jax.train import checksums


class CheckpointDoesNotFit(ValueError):
  """A readable checkpoint of another model (other shapes): never damage, never set aside."""


class CheckpointSaveFailed(OSError):
  """A save that did not complete (a full disk, a folder that became unwritable); the checkpoints
  written before it are intact (orbax writes to a temporary folder and renames it when done)."""


class _LateCompletionsDroppedLoop(asyncio.SelectorEventLoop):
  """An event loop that drops what other threads hand it after it closed, instead of raising.

  When one array of a save fails (a full disk), orbax's save ends and closes its event loop while
  tensorstore is still finishing the writes of the other arrays; each of those completions is
  handed to the closed loop, and tensorstore hands the RuntimeError it gets to
  sys.unraisablehook: a traceback on stderr per array, hundreds of lines around the one-line
  message the failed save gets. Nobody awaits those writes any more: dropping them loses nothing."""

  def call_soon_threadsafe(self, callback, *args, context=None):
    if self.is_closed():
      return None
    try:
      return super().call_soon_threadsafe(callback, *args, context=context)
    except RuntimeError:
      if self.is_closed():  # closed between the check and the call
        return None
      raise


class _Policy(asyncio.DefaultEventLoopPolicy):
  _loop_factory = _LateCompletionsDroppedLoop


def drop_writes_completed_after_a_failed_save() -> None:
  """Makes the process's new asyncio event loops (orbax makes one per save) drop the completions
  that arrive after they closed (see _LateCompletionsDroppedLoop). Process-wide, so the entry
  point calls it, not the library."""
  asyncio.set_event_loop_policy(_Policy())


class Checkpoints:
  """``<workdir>/checkpoints`` (the last ``keep``) and ``<workdir>/checkpoints_best`` (the best by
  ``metric``: val mIoU, or AP@50 for instances)."""

  def __init__(self, workdir: Path, keep: int, metric: str):
    self.metric = metric
    self.unverified = set()  # steps restored from a checkpoint without checksums (older ws3d-jax)
    self.latest = ocp.CheckpointManager((workdir / 'checkpoints').absolute(),
                                        options=ocp.CheckpointManagerOptions(max_to_keep=keep))
    self.best = ocp.CheckpointManager((workdir / 'checkpoints_best').absolute(),
                                      options=ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=lambda m: m[metric],
                                                                           best_mode='max'))

  @property
  def directory(self) -> Path:
    return Path(self.latest.directory)

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def save(self, step: int, state) -> None:
    with self._saving(self.latest, step):
      _write_checksums(self.latest, step, state)
      self.latest.save(step, args=ocp.args.StandardSave(state))

  def save_best(self, step: int, state, value: float) -> None:
    """Keeps ``state`` if ``value`` of the metric is the best so far (once per step)."""
    if step not in self.best.all_steps():
      with self._saving(self.best, step):
        _write_checksums(self.best, step, state)
        self.best.save(step, args=ocp.args.StandardSave(state), metrics={self.metric: value})

  def wait_until_finished(self) -> None:
    for manager in (self.latest, self.best):
      with self._saving(manager, None):
        manager.wait_until_finished()
        manager.check_for_errors()

  def check_for_errors(self) -> None:
    """Raises CheckpointSaveFailed if a save running in the background has failed (cheap: the
    training loop asks at every logged step, so a full disk stops the run within seconds)."""
    for manager in (self.latest, self.best):
      with self._saving(manager, None):
        manager.check_for_errors()

  @contextlib.contextmanager
  def _saving(self, manager, step: int | None):
    try:
      yield
    except CheckpointSaveFailed:
      raise
    except Exception as e:  # noqa: BLE001  (orbax and tensorstore raise ValueError, OSError, ...)
      raise save_failed(Path(manager.directory), step, e, self.latest.latest_step()) from None

  def resume(self, state, init_from: str = '', init_step: int = 0):
    """(state, step) to train on from: this run's latest readable checkpoint, else the checkpoint
    of ``init_from``, else (state, 0). A checkpoint that cannot be read (a crash while it was
    written, a damaged disk) is moved aside, said so, and the one before it is tried."""
    for step in sorted(self.latest.all_steps(), reverse=True):
      try:
        restored = self._restore(self.latest, step, state)
      except CheckpointDoesNotFit:
        raise
      except Exception as e:  # noqa: BLE001  (orbax raises many kinds for a damaged step)
        if jax.process_count() > 1:
          # The processes can fail differently inside orbax (seen: one a JSONDecodeError, the other
          # a ValueError), and skipping the step on each alone left their collectives out of step.
          directory = Path(self.latest.directory)
          raise ValueError(f'the checkpoint of step {step} in {directory} cannot be read ({_first_line(e)}). '
                           'The processes of a multi-host run do not skip it on their own: move it aside '
                           f'(mkdir -p {directory}_damaged && mv {directory / str(step)} {directory}_damaged/) and '
                           'start the run again.') from None
        self._set_aside(step, e)
        continue
      logging.info('resumed from the checkpoint of step %d in %s%s', step, self.latest.directory,
                   ' (it has no checksums: unverified)' if step in self.unverified else '')
      return restored, step
    if init_from:
      return init_from_run(init_from, init_step, state)
    logging.info('no checkpoint yet in %s: starting at step 1', self.latest.directory)
    return state, 0

  def _restore(self, manager, step: int, state):
    """The state of ``step``, checked: shapes against ``state`` (CheckpointDoesNotFit), values
    against the checksums written with it (ChecksumMismatch)."""
    fit = fit_to(saved_shapes(manager, step), state)
    if fit.mismatch:
      raise CheckpointDoesNotFit(
          f'the checkpoint of step {step} in {manager.directory} was written by another model ({fit.mismatch}); '
          'it is not damaged and stays where it is. Train this config in a new --workdir, or run with the '
          'config the checkpoint was trained with (<workdir>/config_train.json).')
    if fit.as_saved:
      restored, verified = _restore_part(Path(manager.directory), step, state, fit)
    else:
      restored = manager.restore(step, args=ocp.args.StandardRestore(state))
      verified = checksums.verify(Path(manager.directory), step, restored)
    if not verified:
      self.unverified.add(step)
    return restored

  def restore_for_eval(self, which: str, state):
    """(state, step) of checkpoint ``which``: 'best' (else the latest), 'latest', or a step."""
    manager = self.best if which == 'best' and self.best.best_step() is not None else self.latest
    step = self.best.best_step() if manager is self.best else (
        self.latest.latest_step() if which in ('best', 'latest') else int(which))
    if step is None:
      raise FileNotFoundError(f'no checkpoint to evaluate in {self.latest.directory}; train first (--mode=train)')
    try:
      return self._restore(manager, step, state), step
    except CheckpointDoesNotFit:
      raise
    except Exception as e:  # noqa: BLE001
      raise ValueError(f'the checkpoint of step {step} in {manager.directory} cannot be read ({_first_line(e)}); '
                       f'evaluate another one with --config.eval.checkpoint=STEP (there are '
                       f'{sorted(self.latest.all_steps())})') from None

  def _set_aside(self, step: int, error: Exception) -> None:
    directory = Path(self.latest.directory)
    damaged = directory.parent / f'{directory.name}_damaged' / str(step)
    damaged.parent.mkdir(exist_ok=True)
    (directory / str(step)).replace(damaged)
    checksums.set_aside(directory, step, damaged)
    self.latest.reload()
    logging.warning('the checkpoint of step %d in %s cannot be read (%s): moved it to %s; trying the one before it',
                    step, directory, _first_line(error), damaged)


def save_failed(directory: Path, step: int | None, error: Exception, last_good: int | None) -> CheckpointSaveFailed:
  """One message: which folder, why (no space, not writable), the space left, what is kept."""
  text = str(error)
  if 'No space left' in text or 'os_error_code=\'28\'' in text or getattr(error, 'errno', None) == errno.ENOSPC:
    why = 'the disk is full'
  elif any(s in text for s in ('Read-only file system', 'Permission denied')) or \
      getattr(error, 'errno', None) in (errno.EROFS, errno.EACCES):
    why = 'the folder cannot be written'
  else:
    why = _first_line(error)
  try:
    usage = shutil.disk_usage(directory if directory.exists() else directory.parent)
    space = f'{usage.free / 2**20:.0f} MB free of {usage.total / 2**20:.0f} MB'
  except OSError:
    space = 'free space unknown'
  # A save in the background fails at the next call into orbax: its temporary folder names the step.
  found = re.search(r'/(\d+)\.orbax-checkpoint-tmp', text)
  step = int(found.group(1)) if found else step
  what = f'the checkpoint of step {step}' if step is not None else 'a checkpoint'
  kept = f'the last complete one is step {last_good}' if last_good is not None else 'none was complete before it'
  return CheckpointSaveFailed(f'saving {what} in {directory} failed: {why} ({space}); {kept}, intact. Make room (or '
                              'point --workdir at another disk) and run the same command again to resume.')


def _write_checksums(manager, step: int, state) -> None:
  if hosts.writes_outputs():
    checksums.write(Path(manager.directory), step, state, manager.all_steps())


@dataclasses.dataclass(frozen=True)
class Fit:
  """How a checkpoint's arrays (its {name: shape} record) fill a state: the first difference that
  no rule covers (None: it fits), the heads this model has not (``unused_heads``), and the flat
  optimizer vectors assembled from what the checkpoint holds (``vector_sources``)."""
  mismatch: str | None = None
  left_behind: frozenset = frozenset()
  raveled: dict = dataclasses.field(default_factory=dict)  # {name here: [(saved name, start, stop)]}

  @property
  def as_saved(self) -> bool:
    """Whether the checkpoint must be read in its own structure and mapped (not restored as is)."""
    return bool(self.left_behind or self.raveled)


def fit_to(saved: dict | None, state) -> Fit:
  """How the record ``saved`` fits ``state`` (None, an unreadable record: that is the restore's
  to report, as damage)."""
  if saved is None:
    return Fit()
  here = _shapes(state)
  left_behind = unused_heads(saved, here)
  raveled = vector_sources(saved, here)
  consumed = {source for sources in raveled.values() for source, _, _ in sources}
  mismatch = first_mismatch({k: v for k, v in saved.items() if k not in consumed},
                            {k: v for k, v in here.items() if k not in raveled}, left_behind)
  return Fit(mismatch=mismatch, left_behind=left_behind, raveled=raveled)


def vector_sources(saved: dict, here: dict) -> dict:
  """{name: [(saved name, start, stop)]} for each one-dimensional array of the record ``here`` that
  holds one number per parameter (the optimizer's moments, optax.flatten: the parameters raveled
  and concatenated in their tree's order) and that the record ``saved`` holds otherwise:

  * leaf by leaf, one array per parameter under that name (a checkpoint from before the
    optimizer was flattened): each whole array (start, stop None), in the parameters' order;
  * as a longer vector over more parameters (the sup_only warm-up's contrast heads at every
    stage, Table 5's last_stage case): the slices of this model's parameters, located through
    the checkpoint's own record of its parameters."""
  mine, theirs = _param_sizes(here), _param_sizes(saved)
  offsets = dict(zip(theirs, np.cumsum([0, *theirs.values()]).tolist()))
  out = {}
  for name, shape in here.items():
    if not mine or saved.get(name) == shape or shape != (sum(mine.values()),):
      continue
    leaves = [f'{name}/{p}' for p in mine]
    if all(saved.get(leaf) is not None and int(np.prod(saved[leaf])) == n for leaf, n in zip(leaves, mine.values())):
      out[name] = [(leaf, None, None) for leaf in leaves]
    elif saved.get(name) == (sum(theirs.values()),) and all(theirs.get(p) == n for p, n in mine.items()):
      out[name] = [(name, offsets[p], offsets[p] + n) for p, n in mine.items()]
  return out


def _param_sizes(record: dict) -> dict:
  """{parameter name: number of values} of a {name: shape} record, in the record's (tree) order."""
  return {name[len('params/'):]: int(np.prod(shape)) for name, shape in record.items() if name.startswith('params/')}


def first_mismatch(saved: dict, here: dict, left_behind=frozenset()) -> str | None:
  """The first array name whose shape differs between two {name: shape} records, the parameters
  first (a parameter that differs says more than the optimizer state that follows from it)."""
  for name in sorted((saved.keys() - left_behind) | here.keys(), key=lambda n: (not n.startswith('params/'), n)):
    if saved.get(name) != here.get(name):
      a, b = saved.get(name, 'absent'), here.get(name, 'absent')
      return f'{name}: {a} in the checkpoint, {b} here'
  return None


def saved_shapes(manager, step: int) -> dict | None:
  """{array name: shape} of the checkpoint of ``step``, from its record; None where unreadable."""
  try:
    metadata = ocp.StandardCheckpointHandler().metadata(Path(manager.directory) / str(step) / 'default')
  except Exception:  # noqa: BLE001
    return None
  tree = getattr(metadata, 'tree', metadata)
  if tree is None:
    return None
  return {checksums.path_name(p): tuple(v.shape) for p, v in
          jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))[0]}


def _shapes(state) -> dict:
  return {checksums.path_name(p): tuple(np.shape(v)) for p, v in jax.tree_util.tree_flatten_with_path(state)[0]}


_HEAD = re.compile(r'(^|/)(head_stage\d+)(/|$)')


def unused_heads(saved: dict, here: dict) -> frozenset:
  """The checkpoint's arrays of contrast projection heads (``head_stage<k>``) that this model
  does not have: a run that contrasts fewer stages (Table 5's last_stage case) initialised from
  one that has a head at every stage (the sup_only warm-up). Those arrays are left behind."""
  heads_here = {m.group(2) for name in here for m in [_HEAD.search(name)] if m}
  return frozenset(name for name in saved.keys() - here.keys()
                   if (m := _HEAD.search(name)) and m.group(2) not in heads_here)


def _first_line(error: Exception) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0][:160]}' if text else type(error).__name__


def completed_metrics(workdir: Path, checkpoints: Checkpoints, total_steps: int) -> dict | None:
  """The final metrics of a run that already reached total_steps and evaluated them, else None."""
  path = workdir / 'eval' / 'metrics.json'
  if checkpoints.latest_step() != total_steps or not path.is_file():
    return None
  try:
    metrics = json.loads(path.read_text())
  except (OSError, ValueError):
    return None  # unreadable: evaluate again rather than trust it
  return metrics if metrics.get('step') == total_steps else None


def init_from_run(workdir: str, step: int, state):
  """The state of another run's checkpoint (typically the sup_only run of the same split): the
  run continues from that step as if its own first steps had been that run's (same parameters,
  BatchNorm statistics, optimiser state and learning-rate schedule position)."""
  directory = (Path(workdir) / 'checkpoints').absolute()
  manager = ocp.CheckpointManager(directory)
  step = step or manager.latest_step()
  if step is None or step not in manager.all_steps():
    raise FileNotFoundError(f'train.init_from: no checkpoint of step {step} in {directory} '
                            f'(it has {sorted(manager.all_steps())}); train that run first or set train.init_step')
  fit = fit_to(saved_shapes(manager, step), state)
  if fit.mismatch:
    raise CheckpointDoesNotFit(f'train.init_from: the checkpoint of step {step} in {directory} does not fit this '
                               f'model (another backbone, width or number of classes?): {fit.mismatch}')
  try:
    if fit.as_saved:
      restored, _ = _restore_part(directory, step, state, fit)
    else:
      restored = manager.restore(step, args=ocp.args.StandardRestore(state))
      checksums.verify(directory, step, restored)
  except (ValueError, KeyError) as e:
    raise ValueError(f'train.init_from: the checkpoint of step {step} in {directory} cannot be used: '
                     f'{_first_line(e)}') from None
  logging.info('initialised from step %d of %s%s', step, directory,
               f' (left behind: {len(fit.left_behind)} arrays of projection heads this model has not)'
               if fit.left_behind else '')
  return restored, step


def _restore_part(directory: Path, step: int, state, fit: Fit):
  """(the arrays of ``state`` out of a checkpoint laid out otherwise, as ``fit`` maps them, in
  ``state``'s structure; whether the checkpoint, read whole, matched its checksums)."""
  whole = _as_saved(directory).restore(step)
  verified = checksums.verify(directory, step, whole)
  by_name = {checksums.path_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(whole)[0]}

  def value(name):
    if name in fit.raveled:
      return np.concatenate([np.ravel(by_name[source])[start:stop] for source, start, stop in fit.raveled[name]])
    return by_name[name]

  paths, treedef = jax.tree_util.tree_flatten_with_path(state)
  return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(value(checksums.path_name(p)), np.asarray(v).dtype)
                                                for p, v in paths]), verified


def _as_saved(directory: Path):
  """A manager that restores checkpoints in the structure they were saved in (no target)."""
  return ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler())


def saved_variables(workdir: str | Path, step: int = 0) -> tuple[dict, int]:
  """({'params', 'batch_stats'}, step) of a run's checkpoint of ``step`` (0: its latest), as it was
  saved: what the diagnostics read a trained model from."""
  directory = (Path(workdir) / 'checkpoints').absolute()
  manager = _as_saved(directory)
  step = step or manager.latest_step()
  if step is None or step not in manager.all_steps():
    raise FileNotFoundError(f'no checkpoint of step {step} in {directory} (it has {sorted(manager.all_steps())})')
  state = manager.restore(step)
  return {'params': state['params'], 'batch_stats': state['batch_stats']}, step

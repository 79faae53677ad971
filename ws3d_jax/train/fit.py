"""The optimisation loop every network of a run trains through (the boundary network, the WS3D
network): steps, non-finite and capacity checks, the console and TensorBoard, checkpoints and
evaluations during training.

Host synchronisation only at log, checkpoint and evaluation steps (and wherever a task's host
hook needs the state, as the instance task's proposal clustering does): the step counts
non-finite updates on the device, and the loop reads the count back when it logs or saves.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import jax_utils

from ws3d_jax import progress, sparse
from ws3d_jax.train import interrupts, steps


@dataclasses.dataclass(frozen=True)
class Loop:
  """What one loop is: its names, length and cadence."""
  name: str  # the console's name of the loop: 'WS3D training'
  step_label: str  # how a step line starts: 'step', 'boundary network step'
  compile_name: str  # what the compile line calls the step: 'the WS3D train step'
  scalar_prefix: str  # TensorBoard tags: '' or 'boundary/'
  total_steps: int
  log_every: int
  logged_terms: tuple = ()  # loss terms on the step line besides the loss
  checkpoint_every: int = 0  # 0: the loop keeps no checkpoints
  # Also a checkpoint at the first logged step this long after the last one (0: off): a run stopped
  # before its first checkpoint_every (step 100 of a run at 5 cm voxels was 12 minutes in) loses little.
  checkpoint_seconds: float = 0.0
  eval_every: int = 0  # 0: no evaluation during training


# A run diverges when the median of its last DIVERGED_WINDOW logged losses is DIVERGED_FACTOR times
# its first logged loss (the first step of this process: a resumed run compares with its own), or
# 1 where that was smaller (a run resumed late starts low, and the unlabeled terms then switch on).
# Seen: optim.lr=1e4 gave losses of 6e8 and an exit 0; a healthy run never grows 100x.
DIVERGED_FACTOR, DIVERGED_WINDOW = 100.0, 3


@dataclasses.dataclass(frozen=True)
class Fitted:
  state: object  # the final state, on the host
  diverged_at: int | None  # the log step at which the divergence rule first held


def fit(loop: Loop, state, stream, model, objective, reader: steps.BatchReader, rng, writer, schedule, start: int = 0,
        checkpoints=None, evaluate: Callable | None = None, before_step: Callable | None = None) -> Fitted:
  """Trains ``state`` (on the host) from step ``start`` to ``loop.total_steps`` on the batches of
  ``stream``; returns the final state on the host and where the loss diverged, if it did.

  checkpoints: with ``save(step, state)``, ``latest_step()``, ``wait_until_finished()``, ``check_for_errors()`` and
      ``directory``: saved every ``loop.checkpoint_every`` steps, at the last step and before
      every evaluation.
  evaluate: (step, host state), every ``loop.eval_every`` steps but the last (the caller
      evaluates the final state).
  before_step: (replicated state, step, batch) -> batch, on the host before each step.
  """
  state, rng = steps.replicate(state), steps.replicate(rng)
  nonfinite = jnp.zeros((), jnp.int32)
  last_saved = checkpoints.latest_step() if checkpoints is not None else None
  timer = progress.StepTimer(loop.name, start, loop.total_steps)
  compiles = progress.Compiles(loop.compile_name)
  t0, points, done = time.time(), 0, 0
  losses, diverged_at = [], None
  multihost = jax.process_count() > 1
  last_save_time, timed_save = time.time(), False
  with progress.Activity.current().doing(timer.status):
    for step in range(start + 1, loop.total_steps + 1):
      signum = interrupts.requested(step, multihost)
      if signum is not None:
        stop_on_signal(signum, step - 1, state, int(nonfinite), loop, last_saved, checkpoints)
      batch = next(stream)
      if before_step is not None:
        batch = before_step(state, step, batch)
      with compiles.around(batch.caps, progress.caps_detail(batch.caps)):
        state, metrics = steps.train_step(state, batch.on_device(), rng, batch.caps, model, objective, reader)
      timer.dispatched(step, compiles.compiled)
      nonfinite = nonfinite + metrics['nonfinite'][0]
      points += int(batch.views[0].point_valid.sum())
      done += 1
      is_last = step == loop.total_steps
      # Until the loop has a rate, every step is read back (a host sync a step, for a few
      # steps), and the step that gives the first rate is logged with its ETA; the first step
      # is logged with what its compile cost. After that, a read back every RESYNC_S seconds
      # keeps the rate (and the console's ETA) true between rare log steps.
      had_rate = timer.rate() is not None
      if not had_rate or timer.resync_due():
        read_back(metrics, timer, step)
      first_rate = not had_rate and timer.rate() is not None
      if step % loop.log_every == 0 or is_last or step == start + 1 or first_rate:
        m = jax.tree.map(lambda x: np.asarray(x[0]), jax.device_get(metrics))
        timer.synced(step)
        sparse.check_capacity(m.pop('needed'), batch.caps.voxels + batch.caps.pairs)
        if checkpoints is not None:
          checkpoints.check_for_errors()  # a save in the background that failed stops the run now
          # Only at the cadence's own steps: the first steps' extra logs are per process (timing).
          timed_save = loop.checkpoint_seconds > 0 and step % loop.log_every == 0 and time_to_save(
              time.time() - last_save_time, loop.checkpoint_seconds, multihost)
        stop_if_nonfinite(int(nonfinite), step, loop, last_saved, checkpoints)
        elapsed = time.time() - t0
        scalars = {k: float(v) for k, v in m.items() if k != 'nonfinite'}
        scalars.update(lr=float(schedule(step - 1)), points_per_second=points / elapsed,
                       steps_per_second=done / elapsed)
        writer.write_scalars(step, {loop.scalar_prefix + k: v for k, v in scalars.items()})
        log_step(loop, step, scalars, f'first step, compile included: {progress.duration(elapsed)}'
                 if step == start + 1 else timer.speed())
        losses.append(scalars['loss'])
        if diverged_at is None and diverging(losses):
          diverged_at = step
          logging.warning('%s: the loss has grown to %.3g at step %d, %.0fx its first logged value %.3g: the run is '
                          'diverging (marked so in eval/metrics.json). Lower optim.lr or set optim.grad_clip.', loop.name,
                          scalars['loss'], step, scalars['loss'] / losses[0], losses[0])
        t0, points, done = time.time(), 0, 0
      evaluate_now = evaluate is not None and loop.eval_every and step % loop.eval_every == 0 and not is_last
      saving = checkpoints is not None and (step % loop.checkpoint_every == 0 or is_last or evaluate_now or timed_save)
      if saving or evaluate_now:
        stop_if_nonfinite(int(nonfinite), step, loop, last_saved, checkpoints)
        host_state = jax.device_get(jax_utils.unreplicate(state))
        if saving:
          checkpoints.save(step, host_state)
          last_saved, last_save_time, timed_save = step, time.time(), False
        if evaluate_now:
          evaluate(step, host_state)
  if checkpoints is not None:
    checkpoints.wait_until_finished()
  return Fitted(jax.device_get(jax_utils.unreplicate(state)), diverged_at)


def diverging(losses: list) -> bool:
  """The divergence rule over the logged losses so far (the first one is the reference)."""
  if len(losses) < 2:
    return False
  return float(np.median(losses[1:][-DIVERGED_WINDOW:])) > DIVERGED_FACTOR * max(abs(losses[0]), 1.0)


def stop_on_signal(signum: int, step: int, state, nonfinite: int, loop: Loop, last_saved: int | None,
                   checkpoints) -> None:
  """After step ``step``, on a signal: a checkpoint of that step (where the loop keeps them and it
  has none yet), then ``Interrupted``."""
  saved = last_saved
  if checkpoints is not None and step > 0 and last_saved != step:
    stop_if_nonfinite(nonfinite, step, loop, last_saved, checkpoints)
    checkpoints.save(step, jax.device_get(jax_utils.unreplicate(state)))
    saved = step
  if checkpoints is not None:
    checkpoints.wait_until_finished()
  raise interrupts.Interrupted(signum, saved, checkpoints.directory if checkpoints is not None else None)


def time_to_save(seconds_since_save: float, every: float, multihost: bool) -> bool:
  """Whether a checkpoint is due by wall time; in a multi-host run the first process's clock
  decides for all (their saves are collective: they must agree on the step)."""
  due = seconds_since_save >= every
  if multihost:
    from jax.experimental import multihost_utils  # noqa: PLC0415
    due = bool(multihost_utils.broadcast_one_to_all(np.asarray(due)))
  return due


def read_back(metrics, timer: progress.StepTimer, step: int) -> None:
  """Waits for this step's results and tells the timer."""
  jax.block_until_ready(metrics['loss'])
  timer.synced(step)


def log_step(loop: Loop, step: int, scalars: dict, speed: str) -> None:
  terms = ''.join(f'  {k} {scalars[k]:.4f}' for k in loop.logged_terms if k in scalars)
  logging.info('%s %d/%d  loss %.4f%s  (%s)', loop.step_label, step, loop.total_steps, scalars['loss'], terms, speed)


def stop_if_nonfinite(count: int, step: int, loop: Loop, last_saved: int | None, checkpoints) -> None:
  if not count:
    return
  if checkpoints is None:
    kept = 'This loop keeps no checkpoints.'
  elif last_saved is None:
    kept = f'No checkpoint was written yet ({checkpoints.directory} holds none of this run).'
  elif last_saved in getattr(checkpoints, 'unverified', ()):
    kept = (f'The last checkpoint (step {last_saved}) is kept in {checkpoints.directory}; it has no checksums '
            '(an older ws3d-jax wrote it), so whether it is good is not known.')
  else:
    kept = f'The last good checkpoint (step {last_saved}, its checksums verified) is kept in {checkpoints.directory}.'
  raise FloatingPointError(
      f'{loop.name}: the loss, gradient or update became NaN/inf in {count} step(s) up to step {step}; those updates '
      f'were not applied and training stops here. {kept} Lower optim.lr, set optim.grad_clip, or check the input '
      'data, then run again.')

"""Stopping a run on SIGINT (Ctrl-C) or SIGTERM (what SLURM sends before pre-emption) at the next
step boundary, with a checkpoint of that step, instead of a traceback from wherever the signal
landed.

launch.py calls ``install()``; the training loop asks ``requested()`` once per step (a flag, no
system call) and, when set, saves and raises ``Interrupted``, which launch.py turns into one line
and exit status 130 / 143. A second Ctrl-C exits at once. If the loop does not reach a step
boundary within ``GRACE_SECONDS`` (a compile in progress), the process exits anyway: the last
checkpoint written stays the resume point.

Multi-host: the processes must stop at the same step, or their collectives hang. There the
signal is handed to jax's pre-emption notifier (SIGTERM; a Ctrl-C is re-sent as SIGTERM), and the
loop asks ``multihost_utils.reached_preemption_sync_point(step)``, which agrees on one step
across the processes.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

GRACE_SECONDS = 25.0
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}

_received: list[int] = []  # the signals received, in order (the handler only appends)
_installed = False


class Interrupted(Exception):
  """The run stopped at a step boundary on a signal; ``step`` is the checkpoint it wrote (or None)."""

  def __init__(self, signum: int, step: int | None, directory=None):
    self.signum, self.step, self.directory = signum, step, directory
    name = signal.Signals(signum).name
    where = f'checkpoint of step {step} in {directory}' if step is not None else 'no checkpoint written'
    super().__init__(f'stopped on {name} ({where})')

  @property
  def exit_status(self) -> int:
    return EXIT_STATUS.get(self.signum, 128 + self.signum)


def install(multihost: bool = False) -> None:
  """Handlers for SIGINT and SIGTERM (main thread only)."""
  global _installed
  _received.clear()
  if multihost:
    # jax's notifier owns SIGTERM; a Ctrl-C becomes a SIGTERM, so every process hears of it.
    signal.signal(signal.SIGINT, lambda signum, frame: _forward_to_sigterm())
  else:
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)
  _installed = True


def requested(step: int, multihost: bool = False) -> int | None:
  """The signal to stop on before training step ``step``, or None."""
  if multihost and _installed:
    from jax.experimental import multihost_utils  # noqa: PLC0415
    return signal.SIGTERM if multihost_utils.reached_preemption_sync_point(step) else None
  return _received[0] if _received else None


def _handle(signum, frame) -> None:
  del frame
  if _received:
    os._exit(EXIT_STATUS.get(signum, 128 + signum))  # the second signal: at once
  _received.append(signum)
  print(f'{signal.Signals(signum).name}: stopping at the next step with a checkpoint (Ctrl-C again stops at once)',
        file=sys.stderr, flush=True)
  _start_grace_timer(signum)


def _forward_to_sigterm() -> None:
  if _received:
    os._exit(130)
  _received.append(signal.SIGINT)
  _start_grace_timer(signal.SIGINT)
  os.kill(os.getpid(), signal.SIGTERM)


def _start_grace_timer(signum: int) -> None:
  def give_up() -> None:
    logging.error('no step boundary within %.0f s of the signal (a compile?): exiting; the last checkpoint written '
                  'is the resume point', GRACE_SECONDS)
    os._exit(EXIT_STATUS.get(signum, 128 + signum))
  timer = threading.Timer(GRACE_SECONDS, give_up)
  timer.daemon = True
  timer.start()

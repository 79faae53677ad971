"""What the console says while a run works: steps/s and ETA, a line before each compile, and a
reminder of the current activity whenever the log has been quiet for a while.

XLA compiles the sparse network for one to two minutes on a small CPU, and a step of the main
job takes seconds: without these lines a run looks hung. ``Activity`` is a daemon thread that
watches the log; when nothing was logged for ``quiet_s`` seconds it logs what the run is doing
now (a callable, so the line carries the current step and ETA).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time

QUIET_S = 25.0


class _LastRecord(logging.Handler):
  """Remembers when the last INFO-or-louder record was logged (prints nothing)."""

  def __init__(self):
    super().__init__(logging.INFO)
    self.at = time.monotonic()

  def emit(self, record):
    self.at = time.monotonic()


class Activity:
  """``with Activity.current().doing(lambda: 'compiling ...'):`` -- said again while quiet."""

  _instance = None
  _lock = threading.Lock()

  def __init__(self, quiet_s: float = QUIET_S):
    self.quiet_s = quiet_s
    self._what = None
    self._since = time.monotonic()
    self._last = _LastRecord()
    logging.getLogger().addHandler(self._last)
    threading.Thread(target=self._watch, name='ws3d-activity', daemon=True).start()

  def watch(self, handler: logging.Handler) -> None:
    """Counts quiet time by what ``handler`` lets through (the console's own filters included),
    instead of by every record: a line the console drops is no sign of life to a person."""
    logging.getLogger().removeHandler(self._last)
    last = self._last

    def seen(record):
      if record.levelno >= logging.INFO:
        last.at = time.monotonic()
      return True

    handler.addFilter(seen)  # after the handler's other filters: only records they pass get here

  @classmethod
  def current(cls) -> 'Activity':
    with cls._lock:
      if cls._instance is None:
        cls._instance = Activity()
      return cls._instance

  @contextlib.contextmanager
  def doing(self, what):
    """what: a str or a callable returning one; restored to the outer activity on exit."""
    outer = self._what, self._since
    self._what, self._since = what, time.monotonic()
    try:
      yield self
    finally:
      self._what, self._since = outer

  def _watch(self):
    while True:
      time.sleep(1.0)
      what = self._what
      if what is None or time.monotonic() - self._last.at < self.quiet_s:
        continue
      try:
        text = what() if callable(what) else what
      except Exception:  # noqa: BLE001 - a reminder must never take the run down
        continue
      logging.info('... %s (%s so far)', text, duration(time.monotonic() - self._since))


def duration(seconds: float) -> str:
  seconds = max(0.0, seconds)
  if seconds < 90:
    return f'{seconds:.0f} s'
  if seconds < 5400:
    return f'{seconds / 60:.0f} min'
  return f'{seconds / 3600:.1f} h'


class StepTimer:
  """Steps/s and ETA of a loop, measured between the points where the loop reads its results
  back (the device has then finished that step). The host runs ahead of the device by many
  steps, so "where the run is" is the last step read back plus what the rate says since.

  The first step of a loop compiles, and so does a step that meets a new bucket rung: the rate
  restarts after each (keeping its last value until a new one is measured), so one compile
  does not read as slow steps. Where the loop logs rarely (every 1000 steps in the benchmarks), it
  also reads back once the last read is ``RESYNC_S`` old (``resync_due``): else the rate of the
  first, fast steps would stand for the whole loop.
  """

  RESYNC_S = 20.0

  def __init__(self, name: str, start: int, total: int):
    self.name, self.start, self.total = name, start, total
    self.queued = start  # the last step handed to the device
    self.done = start  # the last step read back
    self._done_at = time.monotonic()
    self._base = None  # (time, step) the rate is measured from
    self._rate = None

  def dispatched(self, step: int, compiled: bool = False) -> None:
    self.queued = step
    if compiled:
      self._base = None

  def synced(self, step: int) -> None:
    now = time.monotonic()
    self.done, self._done_at = step, now
    if self._base is None:
      self._base = (now, step)
    elif step > self._base[1]:
      self._rate = (step - self._base[1]) / max(now - self._base[0], 1e-9)

  def rate(self) -> float | None:
    return self._rate

  def resync_due(self) -> bool:
    return time.monotonic() - self._done_at >= self.RESYNC_S

  def current(self) -> int:
    if self._rate is None:
      return self.done
    return min(self.queued, int(self.done + self._rate * (time.monotonic() - self._done_at)))

  def eta(self) -> str:
    if self._rate is None:
      return 'ETA after the next step read back'
    return f'ETA {duration((self.total - self.current()) / self._rate)}'

  def speed(self) -> str:
    return self.eta() if self._rate is None else f'{self._rate:.2f} steps/s, {self.eta()}'

  def status(self) -> str:
    if self._rate is None:
      return f'{self.name}: step {self.done}/{self.total} done, {self.eta()}'
    return f'{self.name}: about step {self.current()}/{self.total}, {self.speed()}'


class Compiles:
  """Says before each compile of a jitted function what is compiled and about how long it takes;
  one key per distinct shape (a bucket rung), so cached shapes say nothing."""

  def __init__(self, what: str, first_estimate: str = 'a minute or two on a small CPU, seconds on a GPU or '
                                                      'from the compilation cache'):
    self.what, self.estimate = what, first_estimate
    self.seen, self.last_s = set(), None
    self.compiled = False  # whether the last call through around() compiled

  @contextlib.contextmanager
  def around(self, key, detail: str = ''):
    self.compiled = key not in self.seen
    if not self.compiled:
      yield
      return
    self.seen.add(key)
    took = self.estimate if self.last_s is None else f'the last one took {duration(self.last_s)}'
    logging.info('compiling %s%s (%s)', self.what, f' for {detail}' if detail else '', took)
    t0 = time.monotonic()
    with Activity.current().doing(f'compiling {self.what}'):
      yield
    self.last_s = time.monotonic() - t0


def caps_detail(caps) -> str:
  return f'a bucket of {caps.voxels[0]} voxels'

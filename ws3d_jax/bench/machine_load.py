"""Whether a measurement had the machine to itself: the load average around it and the CPU time
that other processes took meanwhile (the machine's busy time from /proc/stat, less this
process's and its children's own).

    with MachineLoad() as load:
      ... run ...
    load.record()  # {'wall_seconds', 'load_average_start', 'load_average_end', 'other_cpu_seconds', ...}

On 2 cores a second job beside a benchmark halves or thirds its rates (docs/benchmarks.md), so a
figure is worth keeping only with this record next to it.
"""
from __future__ import annotations

import os
import resource
import time

# Other processes using more than this many cores on average: the run shared the machine.
SHARED_CORES = 0.15


def _busy_seconds() -> float | None:
  """CPU seconds the whole machine has been busy since boot (None off Linux)."""
  try:
    with open('/proc/stat') as f:
      fields = f.readline().split()[1:]
  except OSError:
    return None
  ticks = [int(x) for x in fields]
  idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
  return (sum(ticks[:8]) - idle) / os.sysconf('SC_CLK_TCK')


def _own_seconds() -> float:
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _load_average() -> list | None:
  return [round(v, 2) for v in os.getloadavg()] if hasattr(os, 'getloadavg') else None


class MachineLoad:
  def __enter__(self) -> 'MachineLoad':
    self._start = (time.time(), _busy_seconds(), _own_seconds())
    self._load_start = _load_average()
    self._end = None
    return self

  def __exit__(self, *exc) -> None:
    self._end = (time.time(), _busy_seconds(), _own_seconds())
    self._load_end = _load_average()

  def record(self) -> dict:
    end = self._end or (time.time(), _busy_seconds(), _own_seconds())
    wall = end[0] - self._start[0]
    other = None
    if self._start[1] is not None and end[1] is not None:
      other = max(0.0, (end[1] - self._start[1]) - (end[2] - self._start[2]))
    cores = other / wall if other is not None and wall > 0 else None
    return {'wall_seconds': round(wall, 1), 'cpus': os.cpu_count(), 'load_average_start': self._load_start,
            'load_average_end': self._load_end if self._end else _load_average(),
            'other_cpu_seconds': None if other is None else round(other, 1),
            'other_cores': None if cores is None else round(cores, 3),
            'shared': bool(cores is not None and cores > SHARED_CORES)}

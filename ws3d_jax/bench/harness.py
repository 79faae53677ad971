"""Timing and environment helpers shared by the benchmarks: jit timing, peak memory, device facts."""
from __future__ import annotations

import functools
import os
import platform
import resource
import time

import numpy as np


# --- environment ----------------------------------------------------------------------------------

def device_info(extended: bool = False) -> dict:
  import jax
  import jaxlib
  info = {
      'backend': jax.default_backend(),
      'devices': [str(d) for d in jax.devices()],
      'device_kind': jax.devices()[0].device_kind,
      'cpu_count': os.cpu_count(),
      'jax': jax.__version__,
      'jaxlib': jaxlib.__version__,
      'python': platform.python_version(),
      'platform': platform.platform(),
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'glibc_tunables': os.environ.get('GLIBC_TUNABLES', ''),
  }
  try:
    info['sched_cpus'] = len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    pass
  try:
    for line in open('/proc/cpuinfo'):
      if line.startswith('model name'):
        info['cpu_model'] = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  try:
    import torch
    info['torch'] = torch.__version__
    info['torch_threads'] = torch.get_num_threads()
  except Exception as e:  # noqa: BLE001 - optional peer
    info['torch'] = f'not importable: {type(e).__name__}: {e}'
  if extended:
    try:
      info['memory_stats'] = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
      info['memory_stats'] = None
    try:
      with open('/proc/meminfo') as f:
        info['mem_total'] = f.readline().split(':', 1)[1].strip()
    except OSError:
      pass
  return info


def load_average():
  try:
    return [round(v, 2) for v in os.getloadavg()]
  except OSError:
    return None


class Memory:
  """Per-workload peak memory: resident set on CPU, device peak on an accelerator."""

  def __init__(self):
    self.can_reset = self._reset()

  @staticmethod
  def _reset() -> bool:
    try:
      with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets the peak-RSS watermark (VmHWM and ru_maxrss)
      return True
    except OSError:
      return False

  def start(self):
    self.can_reset = self._reset()

  def read(self) -> dict:
    import jax
    out = {'peak_rss_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           'peak_rss_scope': 'workload' if self.can_reset else 'process (cumulative)'}
    try:
      stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
      stats = None
    if stats and 'peak_bytes_in_use' in stats:
      out['device_peak_mb'] = round(stats['peak_bytes_in_use'] / 2**20, 1)
      out['device_peak_scope'] = 'process (cumulative)'
    return out


# --- timing ---------------------------------------------------------------------------------------

def sig(x: float, digits: int = 4) -> float:
  return float(f'{x:.{digits}g}')


def summary_ms(ts, first=None):
  ts = np.asarray(ts) * 1e3
  out = {'median_ms': round(float(np.median(ts)), 3), 'p90_ms': round(float(np.percentile(ts, 90)), 3),
         'min_ms': round(float(ts.min()), 3), 'reps': int(len(ts))}
  if first is not None:
    out['first_call_ms'] = round(first * 1e3, 1)
  return out


def time_jax(fn, args, warmup: int, reps: int) -> dict:
  import jax
  return time_calls(lambda: jax.block_until_ready(fn(*args)), warmup, reps)


def counted_jit(fn, counts: dict, key: str, **jit_kw):
  """jax.jit whose traces are counted in counts[key] (one per compile)."""
  import jax
  counts.setdefault(key, 0)

  @functools.wraps(fn)
  def wrapped(*a, **k):
    counts[key] += 1
    return fn(*a, **k)

  return jax.jit(wrapped, **jit_kw)


def xla_temp_mb(jitted, args):
  try:
    stats = jitted.lower(*args).compile().memory_analysis()
    return round(stats.temp_size_in_bytes / 2**20, 1)
  except Exception:  # noqa: BLE001 - not every backend reports it
    return None


def time_calls(fn, warmup: int, reps: int) -> dict:
  """Median / p90 / min of fn() after warm-up; the first call (compiles, if any) reported apart."""
  t0 = time.perf_counter()
  fn()
  first = time.perf_counter() - t0
  for _ in range(max(0, warmup - 1)):
    fn()
  ts = []
  for _ in range(reps):
    t0 = time.perf_counter()
    fn()
    ts.append(time.perf_counter() - t0)
  return summary_ms(ts, first)

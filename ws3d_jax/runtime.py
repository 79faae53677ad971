"""Process settings the sparse engine runs fastest with, applied before jax starts.

``configure()`` is called first thing by the entry points (launch.py, the train_step and
label_efficiency benchmarks; not the test suite, whose output pytest has captured by then).
On a CPU-only install it sets

* LLVM -O1 (``--xla_backend_optimization_level=1``): compiles the sparse network about 2x
  faster than XLA's default -O2 and runs it no slower (docs/benchmarks.md);
* transparent huge pages for glibc's malloc (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``): the
  step allocates hundreds of MB of gathered pairs per layer, and with 4 KiB pages the kernel
  spent a third of the step's CPU time faulting them in (1.39 s of system time per
  forward+backward, 0.29 s with huge pages; docs/benchmarks.md). glibc reads its tunables only
  at start-up, so the process re-executes itself once with the variable set.

Settings already present in the environment are left as they are: a user's XLA_FLAGS or
GLIBC_TUNABLES win. ``WS3D_NO_REEXEC=1`` turns the re-execution off (the process then runs
with 4 KiB pages, only slower). ``reexec_with_malloc_hugepages`` is the re-execution alone, for a
command that asks for huge pages itself (``python -m ws3d_jax.bench.sparse_conv --malloc-hugepages``).
"""
from __future__ import annotations

import importlib.util
import os
import sys

_GPU_PLUGINS = ('jax_cuda12_plugin', 'jax_cuda13_plugin', 'jax_rocm60_plugin')
_THP_MODE = '/sys/kernel/mm/transparent_hugepage/enabled'
_MARK = 'WS3D_REEXECUTED'
_HUGETLB = 'glibc.malloc.hugetlb'


def has_gpu_plugin() -> bool:
  return any(importlib.util.find_spec(m) for m in _GPU_PLUGINS)


def configure(reexec: bool = True, quiet: bool = False) -> None:
  """Sets the CPU flags (when no GPU plugin is installed); then, if huge pages are available
  but not enabled for malloc, re-executes the process with them. Call before importing jax.

  ``quiet``: TensorFlow's C++ notices off (it is imported only for TensorBoard's writer, and
  announces oneDNN and CPU features at start-up; oneDNN is switched off, which it does not need)."""
  if quiet:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    # TensorFlow only writes TensorBoard events here. On CPUs with AVX-512 VNNI its oneDNN notice
    # is printed whatever the log level, twice, before anything of ours: oneDNN off keeps it out.
    os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  if 'jax' in sys.modules and _backends_started():
    return  # too late for XLA_FLAGS; keep whatever this process already runs with
  if not has_gpu_plugin():
    # Without a plugin the CPU is the only backend; naming it spares jax's probe for a TPU
    # (and its "Unable to initialize backend 'tpu'" line).
    os.environ.setdefault('JAX_PLATFORMS', 'cpu')
    flags = os.environ.get('XLA_FLAGS', '')
    if '--xla_backend_optimization_level' not in flags:
      os.environ['XLA_FLAGS'] = (flags + ' --xla_backend_optimization_level=1').strip()
  if reexec and _should_reexec():
    reexec_with_malloc_hugepages()


def reexec_with_malloc_hugepages(args: list[str] | None = None) -> None:
  """Re-executes the interpreter with glibc's malloc on transparent huge pages, running args (default:
  this process's own command line, ``sys.orig_argv``); returns at once where GLIBC_TUNABLES already
  says anything about malloc's huge pages (a user's setting, or this process is the re-executed one)."""
  tunables = os.environ.get('GLIBC_TUNABLES', '')
  if _HUGETLB in tunables:
    return
  os.environ['GLIBC_TUNABLES'] = ':'.join(t for t in (tunables, f'{_HUGETLB}=1') if t)
  os.environ[_MARK] = '1'
  sys.stdout.flush()
  sys.stderr.flush()
  os.execv(sys.executable, [sys.executable] + (sys.orig_argv[1:] if args is None else list(args)))


def _should_reexec() -> bool:
  if os.environ.get(_MARK) or os.environ.get('WS3D_NO_REEXEC') == '1':
    return False
  if not sys.platform.startswith('linux') or not _is_glibc():
    return False
  if _HUGETLB in os.environ.get('GLIBC_TUNABLES', ''):
    return False
  return _thp_mode() == 'madvise'  # 'always': the kernel already backs malloc with huge pages


def _thp_mode() -> str:
  try:
    with open(_THP_MODE) as f:
      text = f.read()
  except OSError:
    return 'never'
  start, end = text.find('['), text.find(']')
  return text[start + 1:end] if 0 <= start < end else 'never'


def _is_glibc() -> bool:
  import platform  # noqa: PLC0415
  return platform.libc_ver()[0] == 'glibc'


def _backends_started() -> bool:
  try:
    from jax._src import xla_bridge  # noqa: PLC0415
  except ImportError:
    return False
  return bool(getattr(xla_bridge, '_backends', None))

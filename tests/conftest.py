"""Shared test settings: float32 everywhere and the location of the real data samples."""
import os
import shutil
import tempfile
from pathlib import Path

# Tests run tiny inputs, where XLA's compile time dwarfs run time: skip LLVM's costly passes.
# (Set before jax is imported; the benchmarks never see this.)
if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_backend_optimization_level=0').strip()

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / '..' / 'shared' / 'data').resolve()


def shared_data(*parts: str) -> Path:
  """Path inside ../shared/data, or skip the test with a message saying what is missing."""
  path = SHARED_DATA.joinpath(*parts)
  if not path.exists():
    pytest.skip(f'real data sample not found at {path} (the tests expect the shared/ folder beside the repo)')
  return path

import jax  # noqa: E402

# The float32 references of the tests must not silently run as TF32/bf16 on a GPU.
jax.config.update('jax_default_matmul_precision', 'highest')

# One compilation cache for the whole session, in this process and in every launch.py or
# `python -c` it starts (they read WS3D_COMPILATION_CACHE): a subprocess that trains what a test
# here already trained (the killed run of test_exact_resume, the resumed processes of
# test_multihost) loads the programs instead of compiling them. Empty at the start, so no test
# depends on an earlier session; removed at the end.
_COMPILATION_CACHE = tempfile.mkdtemp(prefix='ws3d_tests_xla_')
os.environ['WS3D_COMPILATION_CACHE'] = _COMPILATION_CACHE
jax.config.update('jax_compilation_cache_dir', _COMPILATION_CACHE)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def pytest_sessionfinish(session, exitstatus):
  shutil.rmtree(_COMPILATION_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _release_compiled_programs():
  """The suite compiles hundreds of programs in one process; XLA:CPU maps each kernel on its
  own, and past vm.max_map_count the process aborts inside LLVM (ws3d_jax/train/mapping_limit.py)."""
  from ws3d_jax.train import mapping_limit
  mapping_limit.release_compiled_if_crowded()
  yield

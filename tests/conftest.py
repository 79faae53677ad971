"""Shared test settings: float32 everywhere and the location of the real data samples."""
import os
from pathlib import Path

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

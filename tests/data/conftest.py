"""Fixtures of the ws3d_jax.data tests: where the real data samples live."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # lets `pytest tests/data` import ws3d_jax without installing it
  sys.path.insert(0, str(REPO))

# The real samples live beside the clone (../shared/data), never inside the repository.
SHARED_DATA = (REPO / '..' / 'shared' / 'data').resolve()


@pytest.fixture
def shared_data():
  """shared_data(*parts): a path under the shared real-data folder; skips when absent."""
  def get(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
      pytest.skip(f'real data sample {path} is absent (expected ../shared/data beside '
                  'the repository)')
    return path
  return get

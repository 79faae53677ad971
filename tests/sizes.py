"""The size the suite trains at: the smallest network that still runs every part of the method
(the strided convolution and its transpose, the skip, the boundary network, the multi-stage
contrast, the energy), so that an integration test pays seconds of compiles, not minutes. It
checks wiring, not learning: tests/train/test_learning.py is the test that learns, at the smoke
config's own size. The scenes stay the smoke config's: the network's runtime on them is small.

``tiny(config)`` for a test that builds its config in Python, ``TINY_FLAGS`` for one that runs
launch.py: the same fields either way.
"""
from __future__ import annotations

TINY = {
    'model.backbone': 'minkunet_test', 'model.width_scale': 0.125, 'model.embed_dim': 8, 'model.chunk': 64,
    'boundary.backbone': 'minkunet_test', 'boundary.width_scale': 0.125,
    'buckets.pin': True,  # one bucket per step function: each step compiles once
    'loss.max_regions': 64,
}
TINY_FLAGS = [f'--config.{path}={value}' for path, value in TINY.items()]


def tiny(config):
  """``config`` at the suite's size (in place; returned for chaining)."""
  for path, value in TINY.items():
    section, name = path.split('.')
    config[section][name] = value
  return config

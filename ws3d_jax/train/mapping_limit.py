"""Keeps a long-lived process under the kernel's limit on memory mappings.

XLA:CPU maps every compiled kernel into memory on its own: one MinkUNet14 train or predict
program adds about 4,300 mappings to the process (measured, docs/training.md), and Linux stops a
process at vm.max_map_count (65,530 by default). A process that compiles fifteen or so such
programs and keeps them (jit caches are never emptied) then dies inside LLVM with "Unable to
allocate section memory" or a segfault, whatever it was doing: that was the XLA:CPU abort of the
test suite (issue 14) and of the label-efficiency benchmark's sixth run. Freeing the compiled
programs (jax.clear_caches) returns the mappings; a later call recompiles, or reads the program
back from the persistent compilation cache.
"""
from __future__ import annotations

import logging
from pathlib import Path

import jax


def mapping_count() -> int:
  try:
    with open('/proc/self/maps', 'rb') as f:
      return sum(1 for _ in f)
  except OSError:  # not Linux
    return 0


def mapping_limit() -> int:
  try:
    return int(Path('/proc/sys/vm/max_map_count').read_text())
  except (OSError, ValueError):
    return 0


def release_compiled_if_crowded(fraction: float = 0.4) -> bool:
  """Frees every compiled program when the process holds more than ``fraction`` of the mapping
  limit. Returns whether it did. Call it between runs, never inside one."""
  count, limit = mapping_count(), mapping_limit()
  if not limit or count <= fraction * limit:
    return False
  jax.clear_caches()
  logging.info('freed the compiled programs: the process held %d of at most %d memory mappings (%d after)',
               count, limit, mapping_count())
  return True

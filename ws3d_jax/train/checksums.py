"""Checksums of what a checkpoint holds, written beside it and verified when it is read back.

orbax's files carry no checksum of the values: 256 random bytes written into a data file of a
checkpoint (its size unchanged) loaded with no complaint, 2,510 of Adam's second moments
changed and 18 of them inf. So every save also writes ``<folder>_checksums/<step>.json``, a CRC-32
of each array of the state (its path, dtype and shape with it), computed from the host copy
that is being saved; a restore recomputes them on what it read. The record is written when the
save starts, so there is no window in which a finished checkpoint lacks one; a record without
its checkpoint (a save that failed) is never read.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import jax
import numpy as np

from ws3d_jax import files


class ChecksumMismatch(ValueError):
  """A checkpoint's values differ from what was saved: a damaged checkpoint."""


def folder_of(directory: Path) -> Path:
  directory = Path(directory)
  return directory.parent / f'{directory.name}_checksums'


def of_state(state, dtypes: dict | None = None) -> dict[str, str]:
  """{path of the array: 'crc32 dtype size'} of every array of ``state`` (on the host), each taken
  in ``dtypes[path]`` where given. The size, not the shape: orbax writes a one-element array as a
  scalar (the train state's step); shapes are checked on their own (checkpoints.fit_to).
  The dtype of the record: orbax casts to the dtype of the state it restores into (the step,
  saved as int32, comes back int64), which changes no value."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    name = path_name(path)
    array = np.asarray(leaf)
    if dtypes and name in dtypes and str(array.dtype) != dtypes[name]:
      array = array.astype(dtypes[name])
    array = np.ascontiguousarray(array)
    out[name] = f'{zlib.crc32(array.view(np.uint8).reshape(-1)):08x} {array.dtype} {array.size}'
  return out


def path_name(path) -> str:
  """'params/conv0/kernel': the same for a state's tree and for orbax's record of it."""
  parts = []
  for key in path:
    for attribute in ('key', 'name', 'idx'):
      if hasattr(key, attribute):
        parts.append(str(getattr(key, attribute)))
        break
    else:
      parts.append(str(key))
  return '/'.join(parts)


def write(directory: Path, step: int, state, kept_steps) -> None:
  """The record of ``step``; records older than the oldest of ``kept_steps`` (the checkpoints
  orbax has finished and not deleted for its keep limit) are removed. Newer ones stay: a save
  still in flight is not among the kept steps yet."""
  folder = folder_of(directory)
  files.write_json(folder / f'{step}.json', of_state(state), indent=None)
  oldest = min(kept_steps, default=None)
  for record in folder.glob('*.json'):
    if oldest is not None and record.stem.isdigit() and int(record.stem) < oldest:
      record.unlink(missing_ok=True)


def verify(directory: Path, step: int, state) -> bool:
  """True when the restored ``state`` matches the record of ``step``; False when there is no
  record (a checkpoint of an older ws3d-jax). Raises ChecksumMismatch naming the arrays."""
  record = folder_of(directory) / f'{step}.json'
  if not record.is_file():
    return False
  try:
    expected = json.loads(record.read_text())
  except (OSError, ValueError):
    raise ChecksumMismatch(f'its checksum record {record} cannot be read') from None
  found = of_state(state, {k: v.split()[1] for k, v in expected.items()})
  wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
  if wrong:
    first = wrong[0]
    raise ChecksumMismatch(f'{len(wrong)} of its {len(expected)} arrays differ from what was saved '
                           f'({", ".join(wrong[:3])}{", ..." if len(wrong) > 3 else ""}; {first}: crc32, dtype, size '
                           f'{expected.get(first, "absent")} saved, {found.get(first, "absent")} read)')
  return True


def set_aside(directory: Path, step: int, damaged: Path) -> None:
  """Moves the record of ``step`` beside the checkpoint that was set aside to ``damaged``."""
  record = folder_of(directory) / f'{step}.json'
  if record.is_file():
    record.replace(damaged.parent / f'{step}.checksums.json')

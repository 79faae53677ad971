"""Writes that never leave a truncated file under the final name: a crash (or a kill) during the
write leaves the previous file, or none, and a later run trusts only complete files."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Callable

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], keep_suffix: bool = False) -> Path:
  """Runs write(tmp) on a hidden temporary file beside `path`, then renames it to `path`.

  The temporary name is built from the stem, so it never contains the target's extension
  ('.label' would make the SemanticKITTI evaluator pick it up) unless keep_suffix is set
  (open3d and numpy pick the file format from the extension). The file is fsynced before the
  rename so that a power loss cannot leave an empty file under the final name either.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f'.{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp'
                       + (path.suffix if keep_suffix else ''))
  try:
    write(tmp)
    with open(tmp, 'rb') as f:
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
  def write(tmp: Path) -> None:
    with open(tmp, 'xb') as f:
      f.write(data)
  return atomic_write(path, write)


def write_text(path: str | os.PathLike, text: str) -> Path:
  return write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, value, indent: int | None = 2) -> Path:
  return write_text(path, json.dumps(value, indent=indent) + '\n')


def save_npz(path: str | os.PathLike, arrays: dict) -> Path:
  """np.savez_compressed of ``arrays`` (names to arrays) under ``path``, atomically."""
  return atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays), keep_suffix=True)

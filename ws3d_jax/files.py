"""Writes that never leave a truncated file under the final name: a crash (or a kill) during the
write leaves the previous file, or none, and a later run trusts only complete files."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sys
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


class WorkdirInUse(RuntimeError):
  pass


@contextlib.contextmanager
def exclusive(workdir: str | os.PathLike, name: str = '.lock'):
  """Holds ``<workdir>/<name>`` for the duration: a second process that tries while the first
  lives fails at once with the holder's pid and command. The lock is the kernel's (flock), so a
  killed process leaves none behind; the file itself stays and is harmless. (The processes of
  one multi-host run each take their own ``name``.)"""
  def busy(holder: str) -> bool:
    raise WorkdirInUse(f'{workdir} is in use by another live run ({holder}); two runs in one workdir would overwrite '
                       'each other\'s checkpoints and events. Wait for it, or pass another --workdir.')
  with _flock(Path(workdir) / name, busy) as path:
    yield path


@contextlib.contextmanager
def waiting_lock(path: str | os.PathLike, waiting: Callable[[str], None]):
  """Holds the lock file ``path`` (flock; a killed holder leaves none), waiting for another
  process that holds it; ``waiting(holder)`` is called once when it has to wait."""
  with _flock(Path(path), lambda holder: waiting(holder) or True) as held:
    yield held


@contextlib.contextmanager
def _flock(path: Path, busy: Callable[[str], bool]):
  """The lock file ``path``, holding this process's pid and command. When another process holds
  it, ``busy(its pid and command)`` raises, or returns True to wait for it."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'a+') as f:
    try:
      fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      if busy(f.read().strip() or 'another process'):
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    f.seek(0)
    f.truncate()
    f.write(f'pid {os.getpid()}: {" ".join(sys.argv)[:200]}\n')
    f.flush()
    try:
      yield path
    finally:
      fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def check_writable(*folders: str | os.PathLike) -> None:
  """Creates each folder and a file in it, so that a workdir that cannot be written fails now,
  not at the first checkpoint an hour from now."""
  for folder in folders:
    folder = Path(folder)
    try:
      folder.mkdir(parents=True, exist_ok=True)
      probe = folder / f'.write-test-{os.getpid()}'
      probe.write_bytes(b'')
      probe.unlink()
    except OSError as e:
      raise PermissionError(f'{folder} cannot be written ({e.strerror or e}); the run would fail at its first save. '
                            'Point --workdir at a writable folder, or fix the folder\'s permissions.') from None

"""Helpers shared by the raw-format readers: the scene dict, file checks, instance ids."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from ws3d_jax.data.labels import IGNORE_LABEL


class MissingFileError(FileNotFoundError, ValueError):
  """A required input file is absent.

  Both a FileNotFoundError and a ValueError: callers that treat every bad input as a
  ValueError (data builders) and callers that test for a missing file both catch it.
  """


def require_file(path: str | os.PathLike, why: str = '') -> Path:
  path = Path(path)
  if not path.is_file():
    raise MissingFileError(errno.ENOENT, f'missing file{" (" + why + ")" if why else ""}',
                           str(path))
  return path


def require_dir(path: str | os.PathLike, why: str = '') -> Path:
  path = Path(path)
  if not path.is_dir():
    raise MissingFileError(errno.ENOENT,
                           f'missing directory{" (" + why + ")" if why else ""}', str(path))
  return path


# No scene of these data sets spans more than this (a LiDAR scan ~200 m, a building ~100 m); a
# coordinate past it is a corrupt value or a file in other units, and would only fail later, at
# voxelization, after the boundary network has trained.
MAX_SPAN_M = 2000.0


def check_coordinates(xyz: np.ndarray, source: str | os.PathLike) -> None:
  """Finite coordinates, spanning at most MAX_SPAN_M on every axis; else a ValueError naming the
  file and the first bad rows."""
  bad = ~np.isfinite(xyz).all(axis=1)
  if bad.any():
    first = np.flatnonzero(bad)[:5].tolist()
    raise ValueError(f'{source}: {int(bad.sum())} of {len(xyz)} points have NaN or infinite '
                     f'coordinates (first rows: {first})')
  if not len(xyz):
    return
  centre = np.median(xyz, axis=0)
  far = (np.abs(xyz - centre) > MAX_SPAN_M / 2).any(axis=1)
  if far.any():
    first = np.flatnonzero(far)[:5].tolist()
    raise ValueError(f'{source}: {int(far.sum())} of {len(xyz)} points lie more than {MAX_SPAN_M / 2:.0f} m from the '
                     f'scene\'s median point (first rows: {first}, e.g. {xyz[first[0]].tolist()}); a corrupt value '
                     'or a file in other units than metres')


def check_length(n: int, expected: int, source: str | os.PathLike, what: str) -> None:
  if n != expected:
    raise ValueError(f'{source}: {what} has {n} entries but the scan has {expected} points')


def consecutive_instances(keys: np.ndarray) -> np.ndarray:
  """Renumbers instance keys to 1..K in increasing key order; key 0 stays 0 (no instance).

  Keys may be any non-negative integers (e.g. SemanticKITTI's full 32-bit label) as long as
  equal keys mean the same object of the scene.
  """
  keys = np.asarray(keys).astype(np.int64)
  uniq, inverse = np.unique(keys, return_inverse=True)
  # With a 0 key present it is uniq[0] and already maps to 0; otherwise start at 1.
  offset = 0 if (len(uniq) and uniq[0] == 0) else 1
  return (inverse.reshape(-1) + offset).astype(np.int32)


def make_scene(scene_id: str, xyz: np.ndarray, features: np.ndarray,
               semantic: np.ndarray | None, instance: np.ndarray | None) -> dict:
  """The reader output: a plain dict of numpy arrays for one scene (no labels -> ignore/0)."""
  n = len(xyz)
  if n == 0:
    raise ValueError(f'{scene_id}: empty scene (no points)')
  if semantic is None:
    semantic = np.full(n, IGNORE_LABEL, np.int32)
  if instance is None:
    instance = np.zeros(n, np.int32)
  features = np.asarray(features, np.float32)
  return {
      'scene_id': str(scene_id),
      'xyz': np.ascontiguousarray(xyz, np.float32),
      'features': np.ascontiguousarray(features.reshape(n, -1)),
      'semantic': np.ascontiguousarray(semantic, np.int32),
      'instance': np.ascontiguousarray(instance, np.int32),
  }

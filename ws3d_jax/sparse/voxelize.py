"""Host-side voxelization of a batch of point clouds into padded, static-shape arrays.

This runs in the input pipeline (numpy, int64 keys): the device only sees padded arrays whose
sizes come from a small set of capacity buckets (``buckets.py``), so varied scenes compile a
bounded number of times.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ws3d_jax.sparse import keys as K


@dataclasses.dataclass
class VoxelizedScene:
  """One scene's voxels, in key order."""
  coords: np.ndarray  # (V, 3) int32, non-negative
  features: np.ndarray  # (V, F) float32, mean of the points in each voxel
  point2voxel: np.ndarray  # (P,) int32


def voxelize_scene(xyz: np.ndarray, features: np.ndarray, voxel_size: float, name: str = 'scene') -> VoxelizedScene:
  """Quantizes one point cloud; ``name`` appears in every error message."""
  xyz = np.asarray(xyz)
  if xyz.ndim != 2 or xyz.shape[1] != 3:
    raise ValueError(f'{name}: xyz must have shape (N, 3), got {xyz.shape}')
  if xyz.shape[0] == 0:
    raise ValueError(f'{name}: empty scene (no points)')
  if features.shape[0] != xyz.shape[0]:
    raise ValueError(f'{name}: {features.shape[0]} feature rows for {xyz.shape[0]} points')
  finite = np.isfinite(xyz).all(axis=1)
  if not finite.all():
    raise ValueError(f'{name}: {int((~finite).sum())} of {len(xyz)} points have NaN/inf coordinates; '
                     'drop them when reading the scene')
  if voxel_size <= 0:
    raise ValueError(f'voxel_size must be positive, got {voxel_size}')
  grid = np.floor(xyz / voxel_size).astype(np.int64)
  grid -= grid.min(axis=0)
  extent = grid.max(axis=0)
  if (extent > K.MAX_COORD).any():
    raise ValueError(f'{name}: scene spans {(extent + 1).tolist()} voxels of {voxel_size} m; '
                     f'the key holds at most {K.MAX_COORD + 1} per axis (crop the scene or use larger voxels)')
  key = (grid[:, 0] << 32) | (grid[:, 1] << 16) | grid[:, 2]
  uniq, inverse = np.unique(key, return_inverse=True)
  counts = np.bincount(inverse, minlength=len(uniq)).astype(np.float32)
  feats = np.zeros((len(uniq), features.shape[1]), np.float32)
  np.add.at(feats, inverse, features.astype(np.float32))
  feats /= counts[:, None]
  coords = np.stack([uniq >> 32, (uniq >> 16) & 0xFFFF, uniq & 0xFFFF], axis=1).astype(np.int32)
  return VoxelizedScene(coords=coords, features=feats, point2voxel=inverse.astype(np.int32).ravel())


@dataclasses.dataclass
class SparseBatch:
  """A padded batch. Row order is key order (batch index most significant)."""
  coords: np.ndarray  # (Nc, 4) int32 b,x,y,z; zeros on padding rows
  features: np.ndarray  # (Nc, F) float32; zeros on padding rows
  voxel_valid: np.ndarray  # (Nc,) bool
  point2voxel: np.ndarray  # (Pc,) int32; Nc on padding points
  point_valid: np.ndarray  # (Pc,) bool
  point_batch: np.ndarray  # (Pc,) int32 scene index of each point; -1 on padding
  num_points: np.ndarray  # (B,) int32 points per scene, in the order they were concatenated


def collate(scenes: Sequence[VoxelizedScene], voxel_capacity: int, point_capacity: int) -> SparseBatch:
  """Concatenates voxelized scenes with their batch index and pads to the given capacities."""
  if len(scenes) > K.MAX_BATCH:
    raise ValueError(f'batch of {len(scenes)} scenes exceeds the key limit of {K.MAX_BATCH}')
  num_voxels = sum(len(s.coords) for s in scenes)
  num_points = sum(len(s.point2voxel) for s in scenes)
  if num_voxels > voxel_capacity:
    raise ValueError(f'capacity overflow: the batch has {num_voxels} voxels but the bucket holds {voxel_capacity}')
  if num_points > point_capacity:
    raise ValueError(f'capacity overflow: the batch has {num_points} points but the bucket holds {point_capacity}')
  coords = np.zeros((voxel_capacity, 4), np.int32)
  feats = np.zeros((voxel_capacity, scenes[0].features.shape[1]), np.float32)
  p2v = np.full((point_capacity,), voxel_capacity, np.int32)
  point_batch = np.full((point_capacity,), -1, np.int32)
  v = p = 0
  for b, s in enumerate(scenes):
    nv, npt = len(s.coords), len(s.point2voxel)
    coords[v:v + nv, 0] = b
    coords[v:v + nv, 1:] = s.coords
    feats[v:v + nv] = s.features
    p2v[p:p + npt] = s.point2voxel + v
    point_batch[p:p + npt] = b
    v, p = v + nv, p + npt
  return SparseBatch(coords=coords, features=feats, voxel_valid=np.arange(voxel_capacity) < num_voxels,
                     point2voxel=p2v, point_valid=np.arange(point_capacity) < num_points,
                     point_batch=point_batch,
                     num_points=np.array([len(s.point2voxel) for s in scenes], np.int32))


def prepare_batch(scenes, voxel_size: float, profile, num_levels: int, names=None):
  """Voxelizes (xyz, features) scenes, plans the bucket and pads: (SparseBatch, Capacities).

  ``profile`` is a buckets.BucketProfile; see buckets.py for how it bounds recompilation.
  """
  from ws3d_jax.sparse import buckets  # local: buckets imports nothing from here, keep it that way

  names = names or [f'scene {i}' for i in range(len(scenes))]
  vox = [voxelize_scene(xyz, f, voxel_size, name) for (xyz, f), name in zip(scenes, names)]
  coords = np.concatenate([np.concatenate([np.full((len(v.coords), 1), b, np.int32), v.coords], 1)
                           for b, v in enumerate(vox)])
  counts = buckets.count_structure(coords, sum(len(v.point2voxel) for v in vox), num_levels)
  caps = profile.plan(counts)
  return collate(vox, caps.voxels[0], caps.points), caps

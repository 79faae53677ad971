"""A benchmark scene made ready for the sparse engine (voxelized, bucketed, padded: ``Prepared``) and
the jitted kernel-map build over it."""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from ws3d_jax.bench.harness import counted_jit
from ws3d_jax.bench.scenes import Scene


@dataclasses.dataclass
class Prepared:
  scene: Scene
  arrays: dict  # jnp arrays of the padded batch
  caps: object
  counts: object  # StructureCounts (real voxels and side pairs per level)
  voxel_coords: np.ndarray  # (V, 3) real voxel coords of level 0
  host_ms: float

  @property
  def voxels(self):
    return self.counts.voxels[0]


def prepare(scene: Scene, num_levels: int, headroom: float, growth: float) -> Prepared:
  import jax.numpy as jnp

  from ws3d_jax import sparse
  t0 = time.perf_counter()
  vox = sparse.voxelize_scene(scene.xyz, scene.feats, scene.voxel_size, scene.name)
  coords = np.concatenate([np.zeros((len(vox.coords), 1), np.int32), vox.coords], 1)
  counts = sparse.count_structure(coords, len(scene.xyz), num_levels)
  profile = sparse.BucketProfile.from_counts(counts, headroom=headroom, growth=growth)
  batch, caps = sparse.prepare_batch([(scene.xyz, scene.feats)], scene.voxel_size, profile, num_levels,
                                     names=[scene.name])
  host_ms = (time.perf_counter() - t0) * 1e3
  arrays = {k: jnp.asarray(getattr(batch, k)) for k in ('coords', 'features', 'voxel_valid', 'point2voxel',
                                                        'point_valid')}
  return Prepared(scene, arrays, caps, counts, vox.coords, host_ms)


def geometry_builder(caps, chunk_sizes, num_levels: int, counts: dict, key: str):
  """Jitted geometry build over the first num_levels levels of caps."""
  from ws3d_jax import sparse
  vcap, pcap = tuple(caps.voxels[:num_levels]), tuple(caps.pairs[:num_levels])

  def build(coords, voxel_valid, point2voxel, point_valid):
    return sparse.build_geometry(coords, voxel_valid, point2voxel, point_valid, vcap, pcap, tuple(chunk_sizes))

  return counted_jit(build, counts, key)


def geometry_args(prep: Prepared):
  a = prep.arrays
  return (a['coords'], a['voxel_valid'], a['point2voxel'], a['point_valid'])

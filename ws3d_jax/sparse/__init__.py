"""A sparse-voxel engine in pure JAX: keys -> kernel maps -> compute, in separate modules."""
import numpy as np

from ws3d_jax.sparse.buckets import BucketProfile, Capacities, StructureCounts, count_structure
from ws3d_jax.sparse import host_kernel_map
from ws3d_jax.sparse.kernel_map import Geometry, build_geometry, check_capacity
from ws3d_jax.sparse.voxelize import SparseBatch, collate, prepare_batch, voxelize_scene

__all__ = ['BucketProfile', 'Capacities', 'Geometry', 'SparseBatch', 'StructureCounts', 'build_geometry',
           'check_capacity', 'collate', 'count_structure', 'geometry_of', 'host_geometry_of', 'prepare_batch',
           'voxelize_scene']


def geometry_of(batch, caps: Capacities, chunk_sizes) -> Geometry:
  """Kernel maps of a padded batch (a SparseBatch or a dict with the same fields); jit-friendly."""
  get = (lambda k: batch[k]) if isinstance(batch, dict) else (lambda k: getattr(batch, k))
  return build_geometry(get('coords'), get('voxel_valid'), get('point2voxel'), get('point_valid'),
                        caps.voxels, caps.pairs, chunk_sizes)


def host_geometry_of(batch, caps: Capacities, chunk_sizes) -> Geometry:
  """The same maps as ``geometry_of``, built on the host (numpy arrays)."""
  get = (lambda k: batch[k]) if isinstance(batch, dict) else (lambda k: getattr(batch, k))
  valid = np.asarray(get('voxel_valid'))
  pyramid = host_kernel_map.pyramid(np.asarray(get('coords'))[valid], len(caps.voxels))
  return host_kernel_map.geometry(pyramid, valid, np.asarray(get('point2voxel')), np.asarray(get('point_valid')),
                                  caps, chunk_sizes)

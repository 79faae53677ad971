"""A sparse-voxel engine in pure JAX: keys -> kernel maps -> compute, in separate modules."""
from ws3d_jax.sparse.buckets import BucketProfile, Capacities, StructureCounts, count_structure
from ws3d_jax.sparse.kernel_map import Geometry, build_geometry, check_capacity
from ws3d_jax.sparse.voxelize import SparseBatch, collate, prepare_batch, voxelize_scene

__all__ = ['BucketProfile', 'Capacities', 'Geometry', 'SparseBatch', 'StructureCounts', 'build_geometry',
           'check_capacity', 'collate', 'count_structure', 'geometry_of', 'prepare_batch', 'voxelize_scene']


def geometry_of(batch, caps: Capacities, chunk_sizes) -> Geometry:
  """Kernel maps of a padded batch (a SparseBatch or a dict with the same fields); jit-friendly."""
  get = (lambda k: batch[k]) if isinstance(batch, dict) else (lambda k: getattr(batch, k))
  return build_geometry(get('coords'), get('voxel_valid'), get('point2voxel'), get('point_valid'),
                        caps.voxels, caps.pairs, chunk_sizes)

"""Per-point normals and curvature from the covariance of the k nearest neighbours."""
from __future__ import annotations

import numpy as np
import open3d as o3d


def estimate_normals(xyz: np.ndarray, k: int = 16) -> tuple[np.ndarray, np.ndarray]:
  """(normals (N, 3) float32, curvature (N,) float32) of an (N, 3) cloud.

  normal = eigenvector of the smallest eigenvalue l0 of the neighbourhood covariance,
  curvature = l0 / (l0 + l1 + l2) (0 on a plane, 1/3 for isotropic scatter). Normals are
  unit length but their sign is arbitrary: compare them with |n_i . n_j|.
  """
  cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(xyz, np.float64)))
  cloud.estimate_covariances(o3d.geometry.KDTreeSearchParamKNN(int(k)))
  # With covariances present open3d skips its own search and only runs its closed-form 3x3
  # eigen solver, which is several times faster than a batched numpy eigh.
  cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(int(k)))
  covariance = np.asarray(cloud.covariances)
  normals = np.asarray(cloud.normals)
  return normals.astype(np.float32), _curvature(covariance, normals)


def _curvature(covariance: np.ndarray, normals: np.ndarray) -> np.ndarray:
  # The normal is the eigenvector of l0, so its Rayleigh quotient n^T C n is l0 itself and
  # the trace is l0 + l1 + l2: no second eigen-decomposition needed.
  smallest = np.einsum('ni,nij,nj->n', normals, covariance, normals)
  total = np.trace(covariance, axis1=1, axis2=2)
  # Coincident points have a zero covariance: call them flat rather than divide by zero.
  curvature = np.divide(smallest, total, out=np.zeros_like(total), where=total > 0)
  return np.clip(curvature, 0.0, 1.0 / 3.0).astype(np.float32)

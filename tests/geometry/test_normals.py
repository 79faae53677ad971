"""Normals and curvature against surfaces whose normals are known."""
import numpy as np

from ws3d_jax.geometry.normals import estimate_normals
from tests.geometry.synthetic import fibonacci_sphere, grid_plane


def _tilted_plane(normal: np.ndarray, seed: int = 0) -> np.ndarray:
  """Random points on the plane through the origin with the given unit normal."""
  rng = np.random.default_rng(seed)
  u = np.cross(normal, [1.0, 0.0, 0.0])
  u /= np.linalg.norm(u)
  v = np.cross(normal, u)
  a, b = rng.uniform(-1, 1, (2, 2000))
  return (a[:, None] * u + b[:, None] * v).astype(np.float32)


def test_plane_normals_and_zero_curvature():
  normal = np.array([0.3, -0.2, 0.9])
  normal /= np.linalg.norm(normal)
  normals, curvature = estimate_normals(_tilted_plane(normal), k=12)
  assert normals.dtype == np.float32 and curvature.dtype == np.float32
  assert normals.shape == (2000, 3) and curvature.shape == (2000,)
  # Sign is arbitrary, so compare |n . n_true|.
  assert np.abs(normals @ normal).min() > 0.9999
  assert curvature.max() < 1e-5


def test_sphere_normals_are_radial():
  xyz = fibonacci_sphere(5000)
  normals, curvature = estimate_normals(xyz, k=12)
  radial = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
  assert np.abs(np.sum(normals * radial, axis=1)).min() > 0.995
  np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
  # A gently curved surface: small but clearly non-zero curvature.
  assert 1e-5 < np.median(curvature) < 0.01


def test_isotropic_scatter_has_high_curvature():
  xyz = np.random.default_rng(1).normal(size=(3000, 3)).astype(np.float32)
  _, curvature = estimate_normals(xyz, k=30)
  assert np.median(curvature) > 0.15
  assert curvature.max() <= 1 / 3 + 1e-6


def test_duplicate_points_give_zero_curvature_not_nan():
  xyz = np.concatenate([np.zeros((20, 3)), grid_plane(0.5, 0.5, 0.05)]).astype(np.float32)
  normals, curvature = estimate_normals(xyz, k=8)
  assert np.isfinite(normals).all() and np.isfinite(curvature).all()

"""Small hand-built clouds with known geometry and labels."""
import numpy as np


def grid_plane(width: float, height: float, spacing: float) -> np.ndarray:
  """(N, 3) float32 points of a regular grid on z = 0, [0, width) x [0, height)."""
  u, v = np.meshgrid(np.arange(0, width, spacing), np.arange(0, height, spacing), indexing='ij')
  return np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], axis=1).astype(np.float32)


def room_corner(spacing: float = 0.02, jitter: float = 0.002, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
  """A 2 m x 2 m floor (label 0) meeting a 2 m x 1 m wall (label 1) at x = 0, and a 0.4 m box
  (label 2) standing on the floor: (xyz, labels)."""
  rng = np.random.default_rng(seed)
  floor = grid_plane(2.0, 2.0, spacing)
  floor = floor[~((floor[:, 0] > 0.8) & (floor[:, 0] < 1.2) & (floor[:, 1] > 0.8)
                  & (floor[:, 1] < 1.2))]  # the box's footprint is not visible
  wall = grid_plane(1.0, 2.0, spacing)[:, [2, 1, 0]] + [-spacing, 0, spacing]
  box = _box_sides(np.array([0.8, 0.8, 0.0]), 0.4, spacing)
  xyz = np.concatenate([floor, wall, box])
  labels = np.repeat(np.arange(3, dtype=np.int32), [len(floor), len(wall), len(box)])
  xyz = xyz + rng.normal(0, jitter, xyz.shape)
  return xyz.astype(np.float32), labels


def _box_sides(corner: np.ndarray, size: float, spacing: float) -> np.ndarray:
  """Top and four sides of an axis-aligned cube (no bottom)."""
  face = grid_plane(size, size, spacing)
  top = face + [0, 0, size]
  side_x = face[:, [2, 0, 1]]           # x = 0 plane
  side_y = face[:, [0, 2, 1]]           # y = 0 plane
  sides = [top, side_x, side_x + [size, 0, 0], side_y, side_y + [0, size, 0]]
  return np.concatenate(sides) + corner


def fibonacci_sphere(n: int, radius: float = 1.0) -> np.ndarray:
  """(n, 3) float32 near-uniform points on a sphere around the origin."""
  i = np.arange(n) + 0.5
  polar = np.arccos(1 - 2 * i / n)
  azimuth = np.pi * (1 + 5 ** 0.5) * i
  unit = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar),
                   np.cos(polar)], axis=1)
  return (radius * unit).astype(np.float32)

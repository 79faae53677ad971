"""Ground-truth boundary points on two labelled slabs with a known answer."""
import numpy as np

from ws3d_jax.geometry.boundary import label_boundaries

IGNORE = 255
SPACING = 0.1


def _slabs(labels_per_slab, columns=10):
  """Slabs of a regular 3-D grid side by side along x, `columns` grid columns each."""
  nx = columns * len(labels_per_slab)
  i, j, k = np.meshgrid(np.arange(nx), np.arange(4), np.arange(3), indexing='ij')
  column = i.ravel()
  xyz = SPACING * np.stack([column, j.ravel(), k.ravel()], axis=1).astype(np.float32)
  labels = np.asarray(labels_per_slab)[column // columns].astype(np.int32)
  return xyz, labels, column


def test_two_touching_slabs():
  xyz, labels, column = _slabs([3, 7])
  # Radius just above the spacing: each point sees exactly its face neighbours, so only the
  # two columns where the slabs touch (9 and 10) see the other label.
  boundary = label_boundaries(xyz, labels, IGNORE, k=26, radius=1.05 * SPACING)
  assert boundary.dtype == bool and boundary.shape == (len(xyz),)
  assert np.array_equal(boundary, np.isin(column, [9, 10]))


def test_wider_radius_widens_the_band():
  xyz, labels, column = _slabs([3, 7])
  boundary = label_boundaries(xyz, labels, IGNORE, k=124, radius=2.05 * SPACING)
  assert np.array_equal(boundary, np.isin(column, [8, 9, 10, 11]))


def test_ignored_points_neither_are_nor_make_boundaries():
  xyz, labels, column = _slabs([3, IGNORE, 7])
  boundary = label_boundaries(xyz, labels, IGNORE, k=26, radius=1.05 * SPACING)
  assert not boundary.any()
  xyz, labels, column = _slabs([3, 7, IGNORE])
  boundary = label_boundaries(xyz, labels, IGNORE, k=26, radius=1.05 * SPACING)
  assert np.array_equal(boundary, np.isin(column, [9, 10]))   # not column 19 next to ignore

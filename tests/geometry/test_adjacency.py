"""Region adjacency: a symmetric relation on unordered pairs, checked against brute force."""
import numpy as np

from ws3d_jax.geometry.adjacency import region_adjacency
from tests.geometry.synthetic import grid_plane


def _brute_force_pairs(xyz, region, k, radius):
  distance = np.linalg.norm(xyz[:, None] - xyz[None], axis=2)
  np.fill_diagonal(distance, np.inf)
  pairs = set()
  for i, row in enumerate(distance):
    for j in np.argsort(row, kind='stable')[:k]:
      if row[j] <= radius and region[i] != region[j]:
        pairs.add((min(region[i], region[j]), max(region[i], region[j])))
  return pairs


def test_matches_brute_force_and_is_a_valid_pair_list():
  rng = np.random.default_rng(0)
  xyz = rng.uniform(0, 1, (400, 3)).astype(np.float32)
  region = rng.integers(0, 30, 400).astype(np.int32)
  pairs = region_adjacency(xyz, region, k=6, radius=0.12)
  assert pairs.dtype == np.int32 and pairs.ndim == 2 and pairs.shape[1] == 2
  assert np.all(pairs[:, 0] < pairs[:, 1])                       # i < j, no self pairs
  assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)    # unique
  assert np.array_equal(pairs, pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))])  # sorted
  assert {tuple(p) for p in pairs.tolist()} == _brute_force_pairs(xyz, region, 6, 0.12)


def test_symmetric_under_relabelling():
  # Swapping the ids of two regions must give the same unordered pairs, mapped.
  rng = np.random.default_rng(1)
  xyz = rng.uniform(0, 1, (300, 3)).astype(np.float32)
  region = rng.integers(0, 10, 300).astype(np.int32)
  swap = np.arange(10)[::-1]
  forward = {tuple(p) for p in region_adjacency(xyz, region, 8, 0.2).tolist()}
  backward = {tuple(sorted((swap[a], swap[b])))
              for a, b in region_adjacency(xyz, swap[region], 8, 0.2).tolist()}
  assert forward == backward


def test_touching_blocks_chain():
  # Three 1 m wide strips in a row: 0-1 and 1-2 touch, 0-2 do not.
  xyz = grid_plane(3.0, 1.0, 0.05)
  region = np.floor(xyz[:, 0] + 1e-4).astype(np.int32)
  assert region_adjacency(xyz, region, k=8, radius=0.1).tolist() == [[0, 1], [1, 2]]


def test_radius_keeps_separated_regions_apart():
  a = grid_plane(1.0, 1.0, 0.05)
  b = a + [2.0, 0, 0]
  xyz = np.concatenate([a, b])
  region = np.repeat([0, 1], len(a)).astype(np.int32)
  assert region_adjacency(xyz, region, k=8, radius=0.1).shape == (0, 2)
  assert region_adjacency(xyz, region, k=len(a) + 1, radius=10.0).tolist() == [[0, 1]]

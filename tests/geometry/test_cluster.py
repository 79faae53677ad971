"""PointGroup clustering, proposals, IoU and NMS, checked against brute force on small inputs.

The reference clustering is an O(N^2) distance matrix walked breadth-first, numbered by the
same rule (consecutive ids by each cluster's smallest point index), so ids compare exactly.
"""
from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np
import pytest

from ws3d_jax.geometry import cluster
from ws3d_jax.geometry.cluster import (Proposals, cluster_points, mask_iou, nms, propose,
                                       proposal_gt_iou)

IGNORE = 255
METHODS = ('auto', 'grid', 'pairs')


def _reference(xyz, semantic, radius, min_points, ignore_classes=()):
  xyz = np.asarray(xyz, np.float64)
  semantic = np.asarray(semantic)
  n = len(xyz)
  node = ~np.isin(semantic, list(ignore_classes) + [IGNORE])
  adjacent = ((np.linalg.norm(xyz[:, None] - xyz[None], axis=2) <= radius)
              & (semantic[:, None] == semantic[None]) & node[:, None] & node[None])
  out = np.full(n, -1, np.int32)
  seen = np.zeros(n, bool)
  next_id = 0
  for seed in range(n):  # seeds in index order: a component is met at its smallest index
    if seen[seed] or not node[seed]:
      continue
    members, queue = [seed], deque([seed])
    seen[seed] = True
    while queue:
      for j in np.flatnonzero(adjacent[queue.popleft()] & ~seen):
        seen[j] = True
        members.append(j)
        queue.append(j)
    if len(members) >= max(min_points, 1):
      out[members] = next_id
      next_id += 1
  return out


def _blobby_cloud(seed, n=360, radius=0.05):
  """Sparse uniform points plus dense blobs (a few cm wide, like shifted objects) and a
  collapsed blob, several classes, some IGNORE labels: every branch of the grid gets used."""
  rng = np.random.default_rng(seed)
  parts = [rng.uniform(0, 0.6, (n // 3, 3))]
  for _ in range(4):
    centre = rng.uniform(0, 0.6, 3)
    parts.append(centre + rng.normal(0, rng.choice([0.3, 1.0, 2.0]) * radius, (n // 6, 3)))
  collapsed = n - n // 3 - 4 * (n // 6)
  parts.append(rng.uniform(0, 0.6, 3) + rng.normal(0, 0.02 * radius, (collapsed, 3)))
  xyz = np.concatenate(parts).astype(np.float32)
  semantic = rng.choice([0, 1, 2, 3, IGNORE], len(xyz), p=[0.2, 0.35, 0.3, 0.1, 0.05])
  perm = rng.permutation(len(xyz))
  return xyz[perm], semantic[perm].astype(np.int32)


# --------------------------------------------------------------------------------------------
# cluster_points against the reference.

@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('seed', range(6))
def test_matches_brute_force(seed, method):
  radius = [0.03, 0.05, 0.08][seed % 3]
  xyz, semantic = _blobby_cloud(seed, radius=radius)
  ignore = (0,) if seed % 2 else ()
  for min_points in (1, 5):
    got = cluster_points(xyz, semantic, radius, min_points, ignore, method=method)
    assert got.dtype == np.int32 and got.shape == (len(xyz),)
    np.testing.assert_array_equal(got, _reference(xyz, semantic, radius, min_points, ignore))


@pytest.mark.parametrize('path', ['enumerate', 'nearest_neighbour'])
def test_grid_exact_checks_match_brute_force(monkeypatch, path):
  # Every undecided cell pair through one of the two exact checks, in many small batches.
  if path == 'enumerate':
    monkeypatch.setattr(cluster, '_ENUMERATE_MAX_PAIRS', 10 ** 9)
    monkeypatch.setattr(cluster, '_CHUNK_PAIRS', 64)
  else:
    monkeypatch.setattr(cluster, '_ENUMERATE_MAX_PAIRS', 0)
  for seed in range(4):
    xyz, semantic = _blobby_cloud(seed + 10, radius=0.05)
    got = cluster_points(xyz, semantic, 0.05, 1, method='grid')
    np.testing.assert_array_equal(got, _reference(xyz, semantic, 0.05, 1))


def test_dense_cells_joined_only_by_their_outliers():
  # Two dense cells two cells apart whose representatives are farther than the radius and
  # whose only close pair is one outlier each: the exact check must find that pair.
  radius = 1.0
  side = radius / np.sqrt(3)
  rng = np.random.default_rng(0)
  a = np.array([0.1, 0.5, 0.5]) * side + rng.uniform(0, 0.05 * side, (80, 3))
  c = np.array([2.85, 0.5, 0.5]) * side + rng.uniform(0, 0.05 * side, (80, 3))
  a[0] = np.array([0.99, 0.5, 0.5]) * side
  c[0] = np.array([2.01, 0.5, 0.5]) * side          # 1.02 cells = 0.59 from a[0]
  xyz = np.concatenate([a, c]).astype(np.float32)
  semantic = np.zeros(len(xyz), np.int32)
  for method in METHODS:
    got = cluster_points(xyz, semantic, radius, 1, method=method)
    np.testing.assert_array_equal(got, np.zeros(len(xyz), np.int32))
  xyz[len(a)] = np.array([2.9, 0.5, 0.5]) * side    # without the bridge: two clusters
  for method in METHODS:
    got = cluster_points(xyz, semantic, radius, 1, method=method)
    np.testing.assert_array_equal(got, np.repeat([0, 1], 80))


def test_methods_agree_on_a_shifted_room_like_cloud():
  # Objects collapsed onto their centres with a few cm of noise: the dense case of the grid.
  rng = np.random.default_rng(3)
  centres = rng.uniform(0, 3, (6, 3))
  owner = rng.integers(0, 6, 1500)
  xyz = (centres[owner] + rng.normal(0, 0.02, (1500, 3))).astype(np.float32)
  semantic = (owner % 3).astype(np.int32)
  results = [cluster_points(xyz, semantic, 0.03, 20, method=m) for m in METHODS]
  for other in results[1:]:
    np.testing.assert_array_equal(results[0], other)
  assert results[0].max() + 1 == 6


# --------------------------------------------------------------------------------------------
# cluster_points: the rules one by one.

def _blob(centre, n, spread, seed=0):
  rng = np.random.default_rng(seed)
  return (np.asarray(centre) + rng.uniform(-spread, spread, (n, 3))).astype(np.float32)


def test_min_points_keeps_exactly_min_points():
  xyz = np.concatenate([_blob([0, 0, 0], 5, 0.005), _blob([1, 0, 0], 4, 0.005)])
  semantic = np.full(len(xyz), 3)
  np.testing.assert_array_equal(cluster_points(xyz, semantic, 0.03, 5), [0] * 5 + [-1] * 4)
  np.testing.assert_array_equal(cluster_points(xyz, semantic, 0.03, 4), [0] * 5 + [1] * 4)
  np.testing.assert_array_equal(cluster_points(xyz, semantic, 0.03, 6), [-1] * 9)


def test_separated_blobs_of_one_class_are_two_clusters_numbered_by_first_point():
  far, near = _blob([1, 1, 1], 30, 0.01, 1), _blob([0, 0, 0], 30, 0.01, 2)
  xyz = np.concatenate([far, near])
  ids = cluster_points(xyz, np.full(60, 4), 0.03, 10)
  np.testing.assert_array_equal(ids, [0] * 30 + [1] * 30)
  # Interleaved: still numbered by each cluster's smallest index.
  perm = np.random.default_rng(0).permutation(60)
  ids = cluster_points(xyz[perm], np.full(60, 4), 0.03, 10)
  first = [np.flatnonzero(ids == k)[0] for k in range(2)]
  assert first == sorted(first) and first[0] == 0
  assert len(set(ids[perm.argsort()][:30])) == 1


def test_touching_blobs_of_different_classes_stay_apart():
  xyz = np.concatenate([_blob([0, 0, 0], 40, 0.02, 1), _blob([0.03, 0, 0], 40, 0.02, 2)])
  assert cluster_points(xyz, np.zeros(80, int), 0.03, 1).max() == 0   # one class: one cluster
  ids = cluster_points(xyz, np.repeat([2, 5], 40), 0.03, 1)
  np.testing.assert_array_equal(ids, np.repeat([0, 1], 40))


def test_ignored_and_excluded_classes_get_minus_one_and_do_not_bridge():
  # A chain of points 2 cm apart; its middle point is relabelled, which cuts the chain.
  xyz = np.stack([np.arange(21) * 0.02, np.zeros(21), np.zeros(21)], axis=1).astype(np.float32)
  for middle in (IGNORE, 1):
    semantic = np.full(21, 7)
    semantic[10] = middle
    ids = cluster_points(xyz, semantic, 0.03, 1, ignore_classes=(1,))
    np.testing.assert_array_equal(ids, [0] * 10 + [-1] + [1] * 10)
  ids = cluster_points(xyz, np.full(21, 1), 0.03, 1, ignore_classes=[0, 1])
  np.testing.assert_array_equal(ids, np.full(21, -1))


def test_radius_zero_joins_only_duplicates():
  xyz = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1e-4]], np.float32)
  for method in METHODS:
    np.testing.assert_array_equal(cluster_points(xyz, np.zeros(4, int), 0.0, 1, method=method),
                                  [0, 0, 0, 1])


def test_tiny_radius_far_beyond_the_grid_falls_back_exactly():
  # Cell coordinates beyond float64's exact integers: the grid hands over to the pair search.
  xyz = np.array([[1, 2, 3], [1, 2, 3], [4, 5, 6]], np.float32)
  ids = cluster_points(xyz, np.zeros(3, int), 1e-16, 1, method='grid')
  np.testing.assert_array_equal(ids, [0, 0, 1])


# --------------------------------------------------------------------------------------------
# Proposals and the dual set.

def _two_touching_chairs(seed=0):
  """Two objects of one class side by side (touching, so the original coordinates give one
  cluster) and a sparse object whose points are too far apart to cluster unshifted; offsets
  point at each object's centre, with 2 mm of noise."""
  rng = np.random.default_rng(seed)
  def grid(shape, spacing, corner):
    axes = [np.arange(k) * spacing for k in shape]
    return np.stack(np.meshgrid(*axes, indexing='ij'), -1).reshape(-1, 3) + corner
  left = grid((8, 5, 5), 0.02, [0, 0, 0])                  # x 0..0.14: 200 points 2 cm apart
  right = grid((8, 5, 5), 0.02, [0.16, 0, 0])              # x 0.16..0.30, 2 cm from left
  sparse = grid((4, 4, 4), 0.1, [3.0, 0, 0])               # 64 points 10 cm apart
  xyz = np.concatenate([left, right, sparse]) + rng.normal(0, 0.001, (464, 3))
  xyz = xyz.astype(np.float32)
  instance = np.repeat([1, 2, 3], [200, 200, 64])
  centres = np.stack([xyz[instance == k].mean(0) for k in (1, 2, 3)])
  offsets = centres[instance - 1] - xyz + rng.normal(0, 0.002, xyz.shape)
  semantic = np.repeat([4, 4, 9], [200, 200, 64]).astype(np.int32)
  return xyz, offsets.astype(np.float32), semantic, instance


def test_shifted_clustering_splits_touching_objects_and_gathers_sparse_ones():
  xyz, offsets, semantic, instance = _two_touching_chairs()
  original = cluster_points(xyz, semantic, 0.03, 50)
  np.testing.assert_array_equal(original, np.repeat([0, -1], [400, 64]))
  shifted = cluster_points(xyz + offsets, semantic, 0.03, 50)
  np.testing.assert_array_equal(shifted, instance - 1)

  proposals = propose(xyz, offsets, semantic, 0.03, 50)
  assert proposals.num_proposals == 4                  # 1 original + 3 shifted
  np.testing.assert_array_equal(proposals.semantic, [4, 4, 4, 9])
  np.testing.assert_array_equal(proposals.sizes(), [400, 200, 200, 64])
  masks = proposals.masks(len(xyz))
  np.testing.assert_array_equal(masks[0], original == 0)
  for k in range(3):
    np.testing.assert_array_equal(masks[k + 1], shifted == k)
  assert np.all(np.diff(proposals.proposal_idx) >= 0)  # sorted by proposal, then point
  # shift_radius applies to the shifted set only: at 10 um the shifted points (2 mm of noise)
  # fall apart into too-small clusters.
  assert propose(xyz, offsets, semantic, 0.03, 50, shift_radius=1e-5).num_proposals == 1
  # Ignoring the class of the chairs leaves the sparse object's shifted cluster only.
  only = propose(xyz, offsets, semantic, 0.03, 50, ignore_classes=[4])
  np.testing.assert_array_equal(only.semantic, [9])
  np.testing.assert_array_equal(only.point_idx, np.arange(400, 464))


def test_proposals_dataclass():
  p = Proposals(np.array([0, 1, 2, 1, 3]), np.array([0, 0, 0, 1, 1]), np.array([2, 5]))
  assert p.num_proposals == 2
  assert p.point_idx.dtype == p.proposal_idx.dtype == p.semantic.dtype == np.int32
  np.testing.assert_array_equal(p.sizes(), [3, 2])
  np.testing.assert_array_equal(p.masks(5), [[1, 1, 1, 0, 0], [0, 1, 0, 1, 0]])
  assert p.masks(5).dtype == bool
  with pytest.raises(dataclasses.FrozenInstanceError):
    p.semantic = np.zeros(2)
  with pytest.raises(ValueError, match='num_points'):
    p.masks(3)
  with pytest.raises(ValueError, match='proposal_idx'):
    Proposals(np.array([0]), np.array([2]), np.array([1]))
  with pytest.raises(ValueError, match='entries'):
    Proposals(np.array([0, 1]), np.array([0]), np.array([1]))
  empty = Proposals.empty()
  assert empty.num_proposals == 0 and empty.masks(4).shape == (0, 4)


# --------------------------------------------------------------------------------------------
# IoU with the ground truth and NMS.

def test_proposal_gt_iou_matches_dense_computation():
  rng = np.random.default_rng(0)
  n, num_proposals = 200, 12
  masks = rng.uniform(size=(num_proposals, n)) < rng.uniform(0.05, 0.5, (num_proposals, 1))
  rows, cols = np.nonzero(masks)
  proposals = Proposals(cols, rows, rng.integers(0, 20, num_proposals))
  gt = rng.integers(0, 7, n)
  gt[gt == 5] = 0                  # a missing id: column 4 must be all zero
  iou = proposal_gt_iou(proposals, gt)
  assert iou.shape == (num_proposals, 6) and iou.dtype == np.float32
  expected = np.zeros((num_proposals, 6))
  for p in range(num_proposals):
    for k in range(1, 7):
      union = (masks[p] | (gt == k)).sum()
      expected[p, k - 1] = (masks[p] & (gt == k)).sum() / union if union else 0.0
  np.testing.assert_allclose(iou, expected, rtol=1e-6)
  assert not iou[:, 4].any()


def test_proposal_gt_iou_of_perfect_proposals_is_one():
  xyz, offsets, semantic, instance = _two_touching_chairs()
  iou = proposal_gt_iou(propose(xyz, offsets, semantic, 0.03, 50), instance)
  np.testing.assert_allclose(iou[1:], np.eye(3))
  np.testing.assert_allclose(iou[0], [0.5, 0.5, 0])


def test_proposal_gt_iou_empty_cases():
  assert proposal_gt_iou(Proposals.empty(), np.array([0, 1, 2])).shape == (0, 2)
  p = Proposals(np.array([0]), np.array([0]), np.array([1]))
  assert proposal_gt_iou(p, np.zeros(3, int)).shape == (1, 0)
  with pytest.raises(ValueError, match='gt_instance'):
    proposal_gt_iou(Proposals(np.array([5]), np.array([0]), np.array([1])), np.zeros(3, int))


def _mask(n, *ranges):
  out = np.zeros(n, bool)
  for lo, hi in ranges:
    out[lo:hi] = True
  return out


def test_nms_on_hand_built_masks():
  masks = np.stack([
      _mask(40, (0, 10)),     # 0
      _mask(40, (0, 8)),      # 1: IoU 0.8 with 0
      _mask(40, (20, 30)),    # 2: disjoint from all
      _mask(40, (5, 15)),     # 3: IoU 5/15 = 0.33 with 0, 3/15 = 0.2 with 1
      _mask(40, (20, 29)),    # 4: IoU 0.9 with 2
  ])
  np.testing.assert_allclose(mask_iou(masks)[0, [1, 3]], [0.8, 1 / 3], rtol=1e-6)
  scores = np.array([0.9, 0.95, 0.5, 0.7, 0.6])
  # 1 first (suppresses 0), then 3 (IoU 0.2 with 1), then 4 (suppresses 2).
  np.testing.assert_array_equal(nms(masks, scores, 0.3), [1, 3, 4])
  # A looser threshold keeps 0 as well (IoU 0.8 with 1 is not above 0.85).
  np.testing.assert_array_equal(nms(masks, scores, 0.85), [1, 0, 3, 4])
  np.testing.assert_array_equal(nms(masks, scores, 0.1), [1, 4])
  # Proposals give the same as their dense masks; equal scores keep the lower index first.
  rows, cols = np.nonzero(masks)
  proposals = Proposals(cols, rows, np.zeros(5))
  np.testing.assert_array_equal(nms(proposals, scores, 0.3), [1, 3, 4])
  np.testing.assert_array_equal(nms(masks, np.ones(5), 0.3), [0, 2])
  assert nms(np.zeros((0, 40), bool), np.zeros(0), 0.3).shape == (0,)
  assert nms(Proposals.empty(), np.zeros(0), 0.3).shape == (0,)


# --------------------------------------------------------------------------------------------
# Bad and empty input.

def test_bad_input_raises_value_errors_naming_the_problem():
  xyz = np.zeros((5, 3), np.float32)
  sem = np.zeros(5, np.int32)
  with pytest.raises(ValueError, match='semantic: has 4 entries but there are 5 points'):
    cluster_points(xyz, sem[:4], 0.03, 1)
  with pytest.raises(ValueError, match=r'xyz: expected an \(N, 3\) array'):
    cluster_points(np.zeros((5, 2)), sem, 0.03, 1)
  nan = xyz.copy()
  nan[3, 1] = np.nan
  with pytest.raises(ValueError, match='xyz: 1 of 5 points have NaN.*index 3'):
    cluster_points(nan, sem, 0.03, 1)
  with pytest.raises(ValueError, match='radius must be a finite number >= 0, got -0.1'):
    cluster_points(xyz, sem, -0.1, 1)
  with pytest.raises(ValueError, match='radius'):
    cluster_points(xyz, sem, float('nan'), 1)
  with pytest.raises(ValueError, match='min_points'):
    cluster_points(xyz, sem, 0.03, -1)
  with pytest.raises(ValueError, match='integer labels'):
    cluster_points(xyz, sem.astype(np.float32), 0.03, 1)
  with pytest.raises(ValueError, match='negative label'):
    cluster_points(xyz, sem - 1, 0.03, 1)
  with pytest.raises(ValueError, match='unknown method'):
    cluster_points(xyz, sem, 0.03, 1, method='dbscan')
  with pytest.raises(ValueError, match='offsets: has 4 rows but xyz has 5 points'):
    propose(xyz, xyz[:4], sem, 0.03, 1)
  with pytest.raises(ValueError, match='offsets: 1 of 5 points have NaN'):
    propose(xyz, nan, sem, 0.03, 1)
  with pytest.raises(ValueError, match='semantic_pred: has 6 entries'):
    propose(xyz, xyz, np.zeros(6, int), 0.03, 1)
  with pytest.raises(ValueError, match='shift_radius'):
    propose(xyz, xyz, sem, 0.03, 1, shift_radius=-1)
  with pytest.raises(ValueError, match='scores: has 2 entries but there are 3 masks'):
    nms(np.ones((3, 4), bool), np.ones(2), 0.3)
  with pytest.raises(ValueError, match='NaN'):
    nms(np.ones((2, 4), bool), np.array([0.5, np.nan]), 0.3)


def test_empty_input_gives_empty_results():
  empty_xyz = np.zeros((0, 3), np.float32)
  empty_sem = np.zeros(0, np.int32)
  for method in METHODS:
    ids = cluster_points(empty_xyz, empty_sem, 0.03, 50, method=method)
    assert ids.shape == (0,) and ids.dtype == np.int32
  p = propose(empty_xyz, empty_xyz, empty_sem, 0.03, 50)
  assert p.num_proposals == 0 and p.point_idx.shape == (0,) and p.semantic.dtype == np.int32
  # Points, but none of an instance class.
  xyz = _blob([0, 0, 0], 100, 0.01)
  semantic = np.repeat([0, 1, IGNORE], [40, 40, 20])
  np.testing.assert_array_equal(cluster_points(xyz, semantic, 0.03, 5, (0, 1)), np.full(100, -1))
  p = propose(xyz, np.zeros_like(xyz), semantic, 0.03, 5, (0, 1))
  assert p.num_proposals == 0
  assert proposal_gt_iou(p, np.ones(100, int)).shape == (0, 1)
  assert nms(p, np.zeros(0), 0.3).shape == (0,)

"""Region-growing oversegmentation: smooth surface patches of bounded size covering every point.

Classic region growing (PCL's RegionGrowing) starts at the flattest unassigned point and adds
each neighbour whose normal is within an angle of the current point's normal; only neighbours
flatter than a curvature threshold keep growing. On the symmetrised KNN graph its result does
not depend on the seed order, except for which region claims a rough point first, so it is a
connected-components problem, solved here with scipy rather than a per-point Python BFS:

  1. smooth points joined by similar neighbour links (normal angle below the threshold, length
     below a gap limit) form the regions;
  2. a rough point joins the region of its nearest similar smooth neighbour, as the region
     that reaches it would claim it;
  3. rough points that no region reached are grouped by the same similar-link rule (PCL would
     leave them as many one-point regions);
  4. regions below a minimum size (noise, fragments among clutter) merge into the neighbour
     across their most similar link, round by round;
  5. regions with too many points or too wide a span are halved at their median until they
     fit, so that a floor or a road does not run on into the rug or the parking lot lying flush
     with it, and dense near-sensor LiDAR surfaces get as many regions as their share of points.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ws3d_jax.geometry.knn import Neighbours, directed_edges, knn


def oversegment(xyz: np.ndarray, normals: np.ndarray, curvature: np.ndarray, *,
                neighbours: Neighbours | None = None, k: int = 8,
                max_angle_deg: float = 5.0, max_curvature: float = 0.1,
                max_edge_length: float = 0.1, min_region_size: int = 10,
                max_region_points: int = 150, max_extent: float = 1.0) -> np.ndarray:
  """(N,) int32 region ids, contiguous 0..Q-1; every point belongs to exactly one region.

  The defaults suit ScanNet (points 2-3 cm apart); preprocess.DATASET_PARAMS holds the sets
  for each data set.

  Args:
    xyz, normals, curvature: (N, 3), (N, 3) (sign ignored), (N,) as from estimate_normals.
    neighbours: a precomputed KNN graph with at least k columns (else one is built).
    k: neighbours a point may grow to.
    max_angle_deg: largest angle between the normals of two neighbours grown into one region.
    max_curvature: only points flatter than this continue the growth.
    max_edge_length: neighbours farther apart than this (metres) are not grown across, so that
      growth does not jump gaps; small regions cross longer links only if nothing else is left.
    min_region_size: regions with fewer points merge into a neighbouring region.
    max_region_points, max_extent: regions with more points, or wider (metres) on some axis,
      are halved until they fit.
  """
  neighbours = knn(xyz, k) if neighbours is None else neighbours.first(k)
  region = grow_regions(normals, curvature, neighbours, max_angle_deg=max_angle_deg,
                        max_curvature=max_curvature, max_edge_length=max_edge_length)
  region = merge_small(region, normals, neighbours, min_region_size, max_edge_length)
  region = split_large(xyz, region, max_region_points, max_extent, min_region_size)
  return contiguous(region)


def grow_regions(normals: np.ndarray, curvature: np.ndarray, neighbours: Neighbours, *,
                 max_angle_deg: float, max_curvature: float,
                 max_edge_length: float) -> np.ndarray:
  """Steps 1-3 of the module docstring: (N,) int64 region ids, not contiguous."""
  similar = _similar_neighbours(normals, neighbours, max_angle_deg, max_edge_length)
  smooth = curvature < max_curvature
  region = _components(similar & smooth[:, None] & smooth[neighbours.index], neighbours.index,
                       among=smooth)
  region = _attach_to_smooth(region, similar & smooth[neighbours.index], neighbours.index)
  leftover = region < 0
  rough = _components(similar & leftover[neighbours.index], neighbours.index, among=leftover)
  return np.where(leftover, rough + region.max() + 1, region)


def _similar_neighbours(normals: np.ndarray, neighbours: Neighbours, max_angle_deg: float,
                        max_edge_length: float) -> np.ndarray:
  """(N, k) bool: the neighbour is close enough and its normal within the angle (either sign)."""
  cosine = np.abs(np.einsum('nd,nkd->nk', normals, normals[neighbours.index]))
  return (cosine >= np.cos(np.deg2rad(max_angle_deg))) & (
      neighbours.distance <= max_edge_length)


def _components(edge_mask: np.ndarray, index: np.ndarray, among: np.ndarray) -> np.ndarray:
  """Connected components of the points in `among` over the masked (N, k) neighbour edges.

  Returns (N,) int64: component id 0..C-1 for points in `among`, -1 for the others.
  """
  n = len(index)
  source = np.broadcast_to(np.arange(n)[:, None], index.shape)[edge_mask & among[:, None]]
  target = index[edge_mask & among[:, None]]
  graph = sparse.csr_matrix((np.ones(len(source), np.int8), (source, target)), shape=(n, n))
  _, label = csgraph.connected_components(graph, directed=True, connection='weak')
  # Points outside `among` are singleton components of the graph: drop them and renumber.
  _, renumbered = np.unique(label[among], return_inverse=True)
  out = np.full(n, -1, np.int64)
  out[among] = renumbered
  return out


def _attach_to_smooth(region: np.ndarray, edge_mask: np.ndarray, index: np.ndarray
                      ) -> np.ndarray:
  """Unassigned points take the region of their nearest masked neighbour that has one."""
  candidate = edge_mask & (region[index] >= 0)
  unassigned = (region < 0) & candidate.any(axis=1)
  if not unassigned.any():
    return region
  nearest = np.argmax(candidate[unassigned], axis=1)  # columns are sorted nearest first
  out = region.copy()
  out[unassigned] = region[index[unassigned, nearest]]
  return out


def merge_small(region: np.ndarray, normals: np.ndarray, neighbours: Neighbours,
                min_size: int, max_edge_length: float = np.inf,
                max_rounds: int = 10) -> np.ndarray:
  """Merges every region of fewer than min_size points into a neighbouring region.

  Each round, every small region joins the neighbour region across its most similar link (the
  neighbour pair with the smallest normal angle; links longer than max_edge_length only as a
  last resort). That is Boruvka's minimum-spanning-tree step, so a fragment joins the surface it
  continues, as in Felzenszwalb-Huttenlocher's small-segment pass, rather than the region it
  touches most (which cost ScanNet about 4 points of purity). Rounds repeat while merged groups
  are still small; a region without any neighbour stays on its own.
  """
  source, target, distance = directed_edges(neighbours)
  cost = 1.0 - np.abs(np.einsum('nd,nd->n', normals[source], normals[target]))
  cost = cost + 2.0 * (distance > max_edge_length)  # 2 > any angle cost
  region = contiguous(region).astype(np.int64)
  for _ in range(max_rounds):
    small = np.bincount(region) < min_size
    a, b = region[source], region[target]
    crossing = small[a] & (a != b)
    if not crossing.any():
      break
    a, b, c = a[crossing], b[crossing], cost[crossing]
    order = np.lexsort((c, a))
    cheapest = order[a[order] != np.r_[-1, a[order][:-1]]]
    region = _merge(region, a[cheapest], b[cheapest])
  return region


def _merge(region: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Joins each source region with its target, transitively, and renumbers contiguously."""
  q = int(region.max()) + 1
  links = sparse.csr_matrix((np.ones(len(source), np.int8), (source, target)), shape=(q, q))
  _, group = csgraph.connected_components(links, directed=True, connection='weak')
  return group[region].astype(np.int64)


def split_large(xyz: np.ndarray, region: np.ndarray, max_points: int, max_extent: float,
                min_size: int = 1, max_levels: int = 24) -> np.ndarray:
  """Halves regions at the median of their longest axis until each holds at most max_points
  points and spans at most max_extent metres (k-d tree style).

  Median cuts give halves of equal count, so no slivers; regions of fewer than 2 * min_size
  points are not cut for their extent alone, so that the halves are not below min_size.
  """
  xyz = np.asarray(xyz, np.float64)
  region = contiguous(region).astype(np.int64)
  for _ in range(max_levels):
    count = np.bincount(region)
    lo, hi = _region_bounds(xyz, region)
    extent = hi - lo
    cut = (count > max_points) | ((extent.max(axis=1) > max_extent) & (count >= 2 * min_size))
    if not cut.any():
      break
    region = _halve(xyz, region, cut, np.argmax(extent, axis=1), count)
  return region


def _halve(xyz: np.ndarray, region: np.ndarray, cut: np.ndarray, axis: np.ndarray,
           count: np.ndarray) -> np.ndarray:
  """Moves the upper half (by coordinate on the region's axis) of each cut region to a new id."""
  points = np.flatnonzero(cut[region])
  r = region[points]
  coordinate = xyz[points, axis[r]]
  order = np.lexsort((coordinate, r))
  first_of_region = np.searchsorted(r[order], r[order], side='left')
  rank = np.arange(len(order)) - first_of_region
  upper = points[order[rank >= count[r[order]] // 2]]
  new_id = np.cumsum(cut) - 1 + len(cut)   # fresh ids after the current ones
  out = region.copy()
  out[upper] = new_id[region[upper]]
  return out


def _region_bounds(xyz: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-region (Q, 3) min and max corners, for contiguous ids."""
  order = np.argsort(region, kind='stable')
  starts = np.flatnonzero(np.r_[True, np.diff(region[order]) != 0])
  sorted_xyz = xyz[order]
  return (np.minimum.reduceat(sorted_xyz, starts, axis=0),
          np.maximum.reduceat(sorted_xyz, starts, axis=0))


def contiguous(region: np.ndarray) -> np.ndarray:
  """Renumbers ids to 0..Q-1 (in increasing order of the old ids) as int32."""
  _, inverse = np.unique(region, return_inverse=True)
  return inverse.reshape(-1).astype(np.int32)

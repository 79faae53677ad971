"""Region-growing oversegmentation: smooth surface patches, capped in size, covering every point.

The classic region growing (PCL's RegionGrowing) starts at the flattest unassigned point and
adds every neighbour whose normal is within an angle of the current point's normal; only
neighbours flatter than a curvature threshold keep growing. Its result does not depend on the
seed order except for which region claims a rough point, so it equals a connected-components
problem on the KNN graph, solved here with scipy instead of a per-point Python BFS:

  1. smooth points joined by "similar" edges (normal angle below the threshold) form the regions;
  2. a rough point joins the region of its nearest similar smooth neighbour, as the region
     reaching it first would claim it;
  3. rough points no region reached are grouped by the same similar-edge rule (PCL would leave
     them as many one-point regions);
  4. regions wider than a maximum extent are cut on a per-region grid, so that a floor or a
     road does not run on into the rug or the parking lot lying flush with it;
  5. regions smaller than a minimum size (noise, cut slivers) merge into the neighbouring region
     they share most neighbour links with; those with no neighbour stay on their own.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ws3d_jax.geometry.knn import Neighbours, directed_edges, knn


def oversegment(xyz: np.ndarray, normals: np.ndarray, curvature: np.ndarray, *,
                neighbours: Neighbours | None = None, k: int = 12,
                max_angle_deg: float = 10.0, max_curvature: float = 0.05,
                max_edge_length: float = 0.1, max_extent: float = 0.6,
                min_region_size: int = 20) -> np.ndarray:
  """(N,) int32 region ids, contiguous 0..Q-1; every point belongs to exactly one region.

  Args:
    xyz, normals, curvature: (N, 3), (N, 3) (sign ignored), (N,) as from estimate_normals.
    neighbours: a precomputed KNN graph with at least k columns (else one is built).
    k: neighbours a point may grow to.
    max_angle_deg: largest angle between the normals of two points grown into one region.
    max_curvature: only points flatter than this continue the growth.
    max_edge_length: neighbours farther than this (metres) never join, so that growth does
      not jump gaps between separate surfaces.
    max_extent: regions whose bounding box is wider than this (metres) on some axis are cut
      into near-equal cells no wider than it.
    min_region_size: regions with fewer points merge into a neighbouring region.
  """
  neighbours = knn(xyz, k) if neighbours is None else neighbours.first(k)
  region = grow_regions(normals, curvature, neighbours, max_angle_deg=max_angle_deg,
                        max_curvature=max_curvature, max_edge_length=max_edge_length)
  region = split_oversized(xyz, region, max_extent)
  region = merge_small(region, neighbours, min_region_size)
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
  nearest = np.argmax(candidate[unassigned], axis=1)  # columns are sorted nearest first
  out = region.copy()
  out[unassigned] = region[index[unassigned, nearest]]
  return out


def split_oversized(xyz: np.ndarray, region: np.ndarray, max_extent: float) -> np.ndarray:
  """Cuts each region wider than max_extent on an axis into a grid of equal cells.

  The grid is fitted to each region's own bounding box (ceil(extent / max_extent) cells per
  axis), so cuts fall evenly instead of shaving slivers off at a global grid's lines.
  Returns (N,) int64 ids, not contiguous.
  """
  region = contiguous(region).astype(np.int64)
  lo, hi = _region_bounds(xyz, region)
  extent = hi - lo
  cells = np.maximum(np.ceil(extent / max_extent), 1).astype(np.int64)      # (Q, 3)
  cell_size = np.where(extent > 0, extent / cells, 1.0)
  cell = np.floor((xyz - lo[region]) / cell_size[region]).astype(np.int64)
  cell = np.clip(cell, 0, cells[region] - 1)
  c = cells[region]
  linear = cell[:, 0] + c[:, 0] * (cell[:, 1] + c[:, 1] * cell[:, 2])
  first_cell = np.concatenate([[0], np.cumsum(cells.prod(axis=1))[:-1]])
  return first_cell[region] + linear


def _region_bounds(xyz: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-region (Q, 3) min and max corners, for contiguous ids."""
  order = np.argsort(region, kind='stable')
  starts = np.flatnonzero(np.r_[True, np.diff(region[order]) != 0])
  sorted_xyz = np.asarray(xyz, np.float64)[order]
  return (np.minimum.reduceat(sorted_xyz, starts, axis=0),
          np.maximum.reduceat(sorted_xyz, starts, axis=0))


def merge_small(region: np.ndarray, neighbours: Neighbours, min_size: int,
                max_rounds: int = 8) -> np.ndarray:
  """Merges regions with fewer than min_size points into a neighbouring region.

  A small region joins the large neighbour region its points link to most often. Rounds
  repeat so that small regions surrounded by small ones are reached once their neighbours
  have joined a large region. Small regions that never reach a large one (an isolated patch of
  fragments) finally join their most-linked small neighbour, so the patch becomes one region;
  a region without any neighbour stays on its own.
  """
  region = contiguous(region).astype(np.int64)
  for _ in range(max_rounds):
    source, target = _merge_targets(region, neighbours, min_size, into_small=False)
    if len(source) == 0:
      break
    region = _merge(region, source, target)
  source, target = _merge_targets(region, neighbours, min_size, into_small=True)
  return _merge(region, source, target)


def _merge_targets(region: np.ndarray, neighbours: Neighbours, min_size: int,
                   into_small: bool) -> tuple[np.ndarray, np.ndarray]:
  """(small region, most-linked neighbour region) pairs, one per small region with one.

  Targets are large regions only, or (into_small) small regions only.
  """
  small = np.bincount(region) < min_size
  point, other = directed_edges(neighbours)
  a, b = region[point], region[other]
  keep = small[a] & (a != b) & (small[b] == into_small)
  q = len(small)
  pair, count = np.unique(a[keep] * q + b[keep], return_counts=True)
  a, b = pair // q, pair % q
  order = np.lexsort((count, a))
  last_of_each = a[order] != np.r_[a[order][1:], -1]
  best = order[last_of_each]
  return a[best], b[best]


def _merge(region: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Joins each source region with its target, transitively, and renumbers contiguously."""
  q = int(region.max()) + 1
  links = sparse.csr_matrix((np.ones(len(source), np.int8), (source, target)), shape=(q, q))
  _, group = csgraph.connected_components(links, directed=True, connection='weak')
  return group[region].astype(np.int64)


def contiguous(region: np.ndarray) -> np.ndarray:
  """Renumbers ids to 0..Q-1 (in increasing order of the old ids) as int32."""
  _, inverse = np.unique(region, return_inverse=True)
  return inverse.reshape(-1).astype(np.int32)

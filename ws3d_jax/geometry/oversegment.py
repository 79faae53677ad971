"""Region-growing oversegmentation: smooth surface patches of bounded size covering every point.

Classic region growing (PCL's RegionGrowing) starts at the flattest unassigned point and adds
each neighbour whose normal is within an angle of the current point's normal; only neighbours
flatter than a curvature threshold keep growing. On the symmetrised KNN graph its result does
not depend on the seed order, except for which region claims a rough point first, so it is a
connected-components problem, solved here with scipy rather than a per-point Python BFS:

  1. smooth points joined by similar neighbour links form the regions. A link is similar when
     the normal angle is below the threshold, the link is shorter than a gap limit and,
     optionally, the appearance (colour, remission) differs by less than a threshold and the
     link does not climb a height step between near-horizontal surfaces (a kerb);
  2. a rough point joins the region of its nearest similar smooth neighbour, as the region
     that reaches it would claim it;
  3. rough points that no region reached are grouped by the same similar-link rule (PCL would
     leave them as many one-point regions) or, optionally, by proximity alone: vegetation and
     clutter have scattered normals that no angle rule can follow;
  4. regions below a minimum size (noise, fragments among clutter) merge into the neighbour
     across their cheapest link, round by round. A link's cost is its normal angle plus,
     optionally, weighted appearance difference, length and plane offset (the distance of each
     end from the other's tangent plane);
  5. regions with too many points or too wide a span are halved at their median until they
     fit, so that a floor or a road does not run on into the rug or the parking lot lying flush
     with it, and dense near-sensor LiDAR surfaces get as many regions as their share of points;
  6. optionally, the smallest regions keep merging by the same rule until the mean region
     size reaches a floor, so that sparser or noisier scenes still get regions of that size.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ws3d_jax.geometry.knn import Neighbours, knn


def oversegment(xyz: np.ndarray, normals: np.ndarray, curvature: np.ndarray, *,
                neighbours: Neighbours | None = None, k: int = 8,
                max_angle_deg: float = 5.0, max_curvature: float = 0.1,
                max_edge_length: float = 0.1, min_region_size: int = 10,
                max_region_points: int = 150, max_extent: float = 1.0,
                features: np.ndarray | None = None, max_feature_diff: float = np.inf,
                feature_weight: float = 0.0, curvature_k: int = 0,
                max_step: float = np.inf, step_slope: float = 0.0,
                step_min_normal_z: float = 0.9, rough_by_proximity: bool = False,
                distance_weight: float = 0.0, offset_weight: float = 0.0,
                min_mean_region_size: float = 0.0) -> np.ndarray:
  """(N,) int32 region ids, contiguous 0..Q-1; every point belongs to exactly one region.

  The function's defaults are the original geometry-only ScanNet set (points 2-3 cm apart);
  preprocess.DATASET_PARAMS holds the tuned set of each data set. Labels play no part.

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
    features: optional (N,) or (N, F) per-point appearance (colour, remission), already scaled
      to comparable units (preprocess divides RGB by 255). None: geometry only.
    max_feature_diff: growth links whose largest per-channel feature difference exceeds this
      are cut (inf: off).
    feature_weight: weight of the summed absolute feature difference in the merge link cost.
    curvature_k: the smooth / rough test uses the curvature averaged over the point and its
      curvature_k nearest neighbours (0: the point's own), which keeps vegetation, whose
      single points are often flat, from growing into many thin normal-following fragments.
    max_step, step_slope, step_min_normal_z: between two points whose normals are within
      acos(step_min_normal_z) of vertical, a link whose height difference exceeds
      max_step + step_slope * (horizontal distance) is not grown across (inf: off): kerbs
      between road and sidewalk, steps between floor and platforms.
    rough_by_proximity: step 3 groups the leftover rough points by links shorter than
      max_edge_length, whatever their normals.
    distance_weight, offset_weight: weights of the link length (metres) and of the plane
      offset |n_i . (x_j - x_i)| + |n_j . (x_j - x_i)| (metres) in the merge link cost.
    min_mean_region_size: after splitting, the smallest regions keep merging until there are
      at most N / min_mean_region_size regions (0: off).
  """
  xyz = np.asarray(xyz, np.float32)
  normals = np.asarray(normals, np.float32)
  neighbours = knn(xyz, k) if neighbours is None else neighbours.first(k)
  features = _as_2d(features, len(xyz))
  # Quantities of every (point, neighbour) link that the growth and the merge share.
  cosine = np.abs(np.einsum('nd,nkd->nk', normals, normals[neighbours.index]))
  need_offset = np.isfinite(max_step) or offset_weight != 0
  offset = xyz[neighbours.index] - xyz[:, None, :] if need_offset else None
  region = grow_regions(
      normals, _neighbourhood_mean(curvature, neighbours, curvature_k), neighbours,
      max_angle_deg=max_angle_deg, max_curvature=max_curvature,
      max_edge_length=max_edge_length, xyz=xyz, features=features,
      max_feature_diff=max_feature_diff, max_step=max_step, step_slope=step_slope,
      step_min_normal_z=step_min_normal_z, rough_by_proximity=rough_by_proximity,
      _cosine=cosine, _offset=offset)
  cost = link_costs(xyz, normals, neighbours, features=features,
                    feature_weight=feature_weight, distance_weight=distance_weight,
                    offset_weight=offset_weight, _cosine=cosine, _offset=offset)
  links = _Links.build(neighbours, cost, max_edge_length)
  region = merge_small(region, normals, neighbours, min_region_size, max_edge_length,
                       _links=links)
  region = split_large(xyz, region, max_region_points, max_extent, min_region_size)
  if min_mean_region_size > 0:
    region = merge_to_count(region, neighbours, cost, max_edge_length,
                            int(len(xyz) // min_mean_region_size), min_region_size,
                            _links=links)
  return contiguous(region)


def grow_regions(normals: np.ndarray, curvature: np.ndarray, neighbours: Neighbours, *,
                 max_angle_deg: float, max_curvature: float, max_edge_length: float,
                 xyz: np.ndarray | None = None, features: np.ndarray | None = None,
                 max_feature_diff: float = np.inf, max_step: float = np.inf,
                 step_slope: float = 0.0, step_min_normal_z: float = 0.9,
                 rough_by_proximity: bool = False, _cosine: np.ndarray | None = None,
                 _offset: np.ndarray | None = None) -> np.ndarray:
  """Steps 1-3 of the module docstring: (N,) int64 region ids, not contiguous."""
  similar = _similar_neighbours(normals, neighbours, max_angle_deg, max_edge_length, _cosine)
  if features is not None and np.isfinite(max_feature_diff):
    difference = np.abs(features[:, None, :] - features[neighbours.index]).max(axis=2)
    similar &= difference <= max_feature_diff
  if xyz is not None and np.isfinite(max_step):
    offset = xyz[neighbours.index] - xyz[:, None, :] if _offset is None else _offset
    similar &= ~_height_steps(offset, normals, neighbours, max_step, step_slope,
                              step_min_normal_z)
  smooth = curvature < max_curvature
  region = _components(similar & smooth[:, None] & smooth[neighbours.index], neighbours.index,
                       among=smooth)
  region = _attach_to_smooth(region, similar & smooth[neighbours.index], neighbours.index)
  leftover = region < 0
  grouping = (neighbours.distance <= max_edge_length) if rough_by_proximity else similar
  rough = _components(grouping & leftover[neighbours.index], neighbours.index, among=leftover)
  return np.where(leftover, rough + region.max() + 1, region)


def _similar_neighbours(normals: np.ndarray, neighbours: Neighbours, max_angle_deg: float,
                        max_edge_length: float, cosine: np.ndarray | None = None
                        ) -> np.ndarray:
  """(N, k) bool: the neighbour is close enough and its normal within the angle (either sign)."""
  if cosine is None:
    cosine = np.abs(np.einsum('nd,nkd->nk', normals, normals[neighbours.index]))
  return (cosine >= np.cos(np.deg2rad(max_angle_deg))) & (
      neighbours.distance <= max_edge_length)


def _height_steps(offset: np.ndarray, normals: np.ndarray, neighbours: Neighbours,
                  max_step: float, step_slope: float, min_normal_z: float) -> np.ndarray:
  """(N, k) bool: a link between two near-horizontal surface points that climbs a step.
  offset: (N, k, 3) neighbour minus point coordinates."""
  horizontal = np.sqrt(offset[..., 0] ** 2 + offset[..., 1] ** 2)
  level = np.abs(normals[:, 2]) > min_normal_z
  both_level = level[:, None] & level[neighbours.index]
  return both_level & (np.abs(offset[..., 2]) > max_step + step_slope * horizontal)


def _neighbourhood_mean(values: np.ndarray, neighbours: Neighbours, k: int) -> np.ndarray:
  """values averaged over each point and its k nearest neighbours (k = 0: unchanged)."""
  values = np.asarray(values, np.float32)
  k = min(int(k), neighbours.k)
  if k <= 0:
    return values
  return (values + values[neighbours.index[:, :k]].sum(axis=1)) / (k + 1)


def _as_2d(features: np.ndarray | None, n: int) -> np.ndarray | None:
  if features is None:
    return None
  features = np.asarray(features, np.float32)
  features = features[:, None] if features.ndim == 1 else features
  if features.ndim != 2 or len(features) != n:
    raise ValueError(f'features must have shape ({n},) or ({n}, F), got {features.shape}')
  return features


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


def link_costs(xyz: np.ndarray, normals: np.ndarray, neighbours: Neighbours, *,
               features: np.ndarray | None = None, feature_weight: float = 0.0,
               distance_weight: float = 0.0, offset_weight: float = 0.0,
               _cosine: np.ndarray | None = None, _offset: np.ndarray | None = None
               ) -> np.ndarray:
  """(N, k) float32 merge cost of every neighbour link (row: point, column: neighbour).

  cost = (1 - |n_i . n_j|) + feature_weight * sum |f_i - f_j| + distance_weight * |x_i - x_j|
         + offset_weight * (|n_i . (x_j - x_i)| + |n_j . (x_j - x_i)|)
  """
  index = neighbours.index
  cosine = (np.abs(np.einsum('nd,nkd->nk', normals, normals[index])) if _cosine is None
            else _cosine)
  cost = 1.0 - cosine
  if features is not None and feature_weight:
    cost += feature_weight * np.abs(features[:, None, :] - features[index]).sum(axis=2)
  if distance_weight:
    cost += distance_weight * neighbours.distance
  if offset_weight:
    offset = xyz[index] - xyz[:, None, :] if _offset is None else _offset
    cost += offset_weight * (np.abs(np.einsum('nd,nkd->nk', normals, offset))
                             + np.abs(np.einsum('nkd,nkd->nk', normals[index], offset)))
  return cost.astype(np.float32)


class _Links(NamedTuple):
  """The directed non-self neighbour links and their merge preference: links no longer than
  max_edge_length by cost, then the longer ones by cost (a last resort)."""
  source: np.ndarray  # (L,) point of each link
  target: np.ndarray  # (L,)
  cost: np.ndarray    # (L,) float32
  key: np.ndarray     # (L,) float32 preference, smaller first: cost, plus a shift if long

  @classmethod
  def build(cls, neighbours: Neighbours, cost: np.ndarray, max_edge_length: float) -> '_Links':
    n, k = neighbours.index.shape
    source = np.repeat(np.arange(n, dtype=np.int32), k)
    target = neighbours.index.reshape(-1)
    cost = np.asarray(cost, np.float32).reshape(-1)
    long = neighbours.distance.reshape(-1) > max_edge_length
    keep = source != target
    shift = np.float32(cost.max(initial=0.0) + 1.0)
    key = cost + long * shift
    return cls(source[keep], target[keep], cost[keep], key[keep])

  def cheapest(self, region: np.ndarray, small: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(small region, neighbour region, cost) of the most preferred link out of each region
    flagged in `small` (a bool per region) that has a link to another region; ties go to the
    lowest link number, so the result is deterministic."""
    a = region[self.source]
    b = region[self.target]
    out = np.flatnonzero(small[a] & (a != b))
    a_out, key_out = a[out], self.key[out]
    best_key = np.full(len(small), np.inf, np.float32)
    np.minimum.at(best_key, a_out, key_out)
    hit = out[key_out == best_key[a_out]]
    best = np.full(len(small), len(self.source), np.int64)
    np.minimum.at(best, a[hit], hit)
    has = np.flatnonzero(best < len(self.source))
    link = best[has]
    return has, b[link], self.cost[link]


def merge_small(region: np.ndarray, normals: np.ndarray, neighbours: Neighbours,
                min_size: int, max_edge_length: float = np.inf,
                max_rounds: int = 10, link_cost: np.ndarray | None = None,
                _links: '_Links | None' = None) -> np.ndarray:
  """Merges every region of fewer than min_size points into a neighbouring region.

  Each round, every small region joins the neighbour region across its cheapest link (by
  default the neighbour pair with the smallest normal angle; `link_cost`, from link_costs,
  adds appearance, length and plane offset; links longer than max_edge_length only as a last
  resort). That is Boruvka's minimum-spanning-tree step, so a fragment joins the surface it
  continues, as in Felzenszwalb-Huttenlocher's small-segment pass, rather than the region it
  touches most (which cost ScanNet about 4 points of purity). Rounds repeat while merged groups
  are still small; a region without any neighbour stays on its own.
  """
  if _links is None:
    if link_cost is None:
      link_cost = link_costs(None, np.asarray(normals, np.float32), neighbours)
    _links = _Links.build(neighbours, link_cost, max_edge_length)
  region = contiguous(region).astype(np.int64)
  for _ in range(max_rounds):
    small = np.bincount(region) < min_size
    source, target, _ = _links.cheapest(region, small)
    if len(source) == 0:
      break
    region = _merge(region, source, target)
  return region


def merge_to_count(region: np.ndarray, neighbours: Neighbours, link_cost: np.ndarray,
                   max_edge_length: float, max_regions: int, min_size: int = 1,
                   max_rounds: int = 200, _links: '_Links | None' = None) -> np.ndarray:
  """Merges the smallest regions, each across its cheapest link, until at most max_regions
  remain (or no region has a neighbour left): the floor on the mean region size.

  A size threshold starts at min_size + 1 and rises by one point whenever every region below
  it has merged; each round merges only as many of the regions below the threshold, smallest
  and then cheapest first, as the count still needs, so the count lands on max_regions.
  """
  links = _Links.build(neighbours, link_cost, max_edge_length) if _links is None else _links
  region = contiguous(region).astype(np.int64)
  threshold = int(min_size) + 1
  for _ in range(max_rounds):
    count = int(region.max()) + 1 if len(region) else 0
    if count <= max(max_regions, 1):
      break
    size = np.bincount(region)
    threshold = max(threshold, int(size.min()) + 1)
    source, target, cost = links.cheapest(region, size < threshold)
    if len(source) == 0:
      if threshold > size.max():
        break          # every region is below the threshold and none has a neighbour left
      threshold += 1
      continue
    need = count - max_regions
    if len(source) > need:
      order = np.lexsort((cost, size[source]))[:need]
      source, target = source[order], target[order]
    else:
      threshold += 1
    region = _merge(region, source, target)
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

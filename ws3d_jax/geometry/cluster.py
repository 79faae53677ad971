"""PointGroup's instance proposals on the host: radius clustering, dual sets, IoU and NMS.

After the jitted forward pass the predicted classes and offsets come back to numpy, and
`propose` clusters the points of instance classes twice, on the original coordinates and on
the offset-shifted ones (PointGroup's dual set, radius 0.03 m, 50 points at least); the
ScoreNet then rates the union of both sets and `nms` keeps the best of overlapping ones.

Clustering semantics (`cluster_points`): two points are connected when they have the same
class and lie no farther than `radius` apart; clusters are the connected components.

Why a grid and not a plain radius search: on shifted coordinates a good offset head collapses
each object onto its centre, so a 3 cm ball around one point holds most of the object, and a
pair search (`cKDTree.query_pairs`) enumerates tens of millions of pairs for one ScanNet room
(5-6 s on one core, docs/benchmarks.md). The grid has cells of side radius / sqrt(3), so that
every two points of a cell are connected without looking at them; only pairs of nearby cells
need a decision, most are settled by one representative distance or a bounding-box bound, and
the few left are checked exactly, and only while the two cells are still in different
components. On sparse sets (the original coordinates: ~1 point per cell) the pair search is
faster, so the default `method='auto'` counts the cells' occupancy first and picks one;
both give the same partition, which the tests check against a brute-force distance matrix.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ws3d_jax.constants import IGNORE_LABEL

METHODS = ('auto', 'grid', 'pairs')
# 'auto' takes the pair search below this mean cell occupancy (sum of squared cell counts per
# point, which grows like the pair count). Measured on one core, 80k-point rooms (ScanNet
# scene0000_00 and the synthetic room of bench/cluster.py): the two are level at 4.3-4.4; at
# 1-3 the pair search is 2-4x faster, at 5.5-5.7 the grid 1.2x, at 12-16 4-6x, and on a
# perfect offset head (occupancy in the thousands) 700x: 18 s against 0.024 s.
_AUTO_MIN_OCCUPANCY = 4.5
# Cell pairs whose exact check would enumerate more point pairs than this go to a KD-tree
# nearest-neighbour query instead (dense cells of a collapsed object).
_ENUMERATE_MAX_PAIRS = 4096
# Point pairs enumerated at once while checking cell pairs exactly (memory: ~40 bytes each).
_CHUNK_PAIRS = 1 << 21
# Cells are a hair smaller than radius / sqrt(3): floor() of a coordinate rounded up across a
# cell border must not put two points farther than radius apart into one cell.
_CELL_SHRINK = 1.0 - 1e-6
# float64 holds integers exactly below 2**53; cell coordinates beyond this (absurd scales or a
# diverged offset head) fall back to the pair search rather than overflow.
_MAX_CELL_COORD = 2.0 ** 50


# --------------------------------------------------------------------------------------------
# Proposals.

@dataclasses.dataclass(frozen=True)
class Proposals:
  """Instance proposals as a membership list: point point_idx[m] belongs to proposal
  proposal_idx[m]; a point may belong to several proposals (one per coordinate set).

  Entries are sorted by proposal, then point; each (proposal, point) pair occurs once.
  """
  point_idx: np.ndarray     # (M,) int32
  proposal_idx: np.ndarray  # (M,) int32, 0..P-1
  semantic: np.ndarray      # (P,) int32 class of each proposal

  def __post_init__(self):
    point_idx = np.asarray(self.point_idx, np.int32).reshape(-1)
    proposal_idx = np.asarray(self.proposal_idx, np.int32).reshape(-1)
    semantic = np.asarray(self.semantic, np.int32).reshape(-1)
    if len(point_idx) != len(proposal_idx):
      raise ValueError(f'Proposals: point_idx has {len(point_idx)} entries but proposal_idx '
                       f'has {len(proposal_idx)}')
    if len(proposal_idx) and (proposal_idx.min() < 0 or proposal_idx.max() >= len(semantic)):
      raise ValueError(f'Proposals: proposal_idx outside 0..{len(semantic) - 1} '
                       f'(semantic gives {len(semantic)} proposals)')
    if len(point_idx) and point_idx.min() < 0:
      raise ValueError('Proposals: negative point_idx')
    # Frozen: the coerced arrays replace the given ones once, here.
    object.__setattr__(self, 'point_idx', point_idx)
    object.__setattr__(self, 'proposal_idx', proposal_idx)
    object.__setattr__(self, 'semantic', semantic)

  @classmethod
  def empty(cls) -> Proposals:
    return cls(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32))

  @property
  def num_proposals(self) -> int:
    return len(self.semantic)

  def sizes(self) -> np.ndarray:
    """(P,) int64 number of points of each proposal."""
    return np.bincount(self.proposal_idx, minlength=self.num_proposals)

  def masks(self, num_points: int) -> np.ndarray:
    """(P, num_points) bool membership; dense, so meant for small P x N (tests, plots)."""
    if len(self.point_idx) and self.point_idx.max() >= num_points:
      raise ValueError(f'Proposals.masks: point index {self.point_idx.max()} does not fit '
                       f'num_points={num_points}')
    out = np.zeros((self.num_proposals, num_points), bool)
    out[self.proposal_idx, self.point_idx] = True
    return out

  def sparse_masks(self, num_points: int) -> sparse.csr_matrix:
    """(P, num_points) CSR matrix of int32 ones: the memberships without a dense array."""
    return _membership_matrix(self.proposal_idx, self.point_idx, self.num_proposals, num_points)


def proposals_from_clusters(cluster_id: np.ndarray, semantic: np.ndarray) -> Proposals:
  """One proposal per cluster id >= 0 of `cluster_points`, in id order."""
  cluster_id = np.asarray(cluster_id)
  members = np.flatnonzero(cluster_id >= 0)
  members = members[np.argsort(cluster_id[members], kind='stable')]  # by proposal, then point
  proposal_idx = cluster_id[members]
  first = np.flatnonzero(np.r_[True, proposal_idx[1:] != proposal_idx[:-1]]) if len(members) \
      else np.zeros(0, np.int64)
  return Proposals(members, proposal_idx, np.asarray(semantic)[members[first]])


def concatenate(proposal_sets: Sequence[Proposals]) -> Proposals:
  """The proposals of all sets, renumbered in the given order."""
  offsets = np.cumsum([0] + [p.num_proposals for p in proposal_sets])
  if not proposal_sets:
    return Proposals.empty()
  return Proposals(np.concatenate([p.point_idx for p in proposal_sets]),
                   np.concatenate([p.proposal_idx + o for p, o in zip(proposal_sets, offsets)]),
                   np.concatenate([p.semantic for p in proposal_sets]))


# --------------------------------------------------------------------------------------------
# Input checks.

def _check_xyz(xyz, name: str) -> np.ndarray:
  xyz = np.asarray(xyz)
  if xyz.ndim != 2 or xyz.shape[1] != 3:
    raise ValueError(f'{name}: expected an (N, 3) array, got shape {xyz.shape}')
  if not np.issubdtype(xyz.dtype, np.floating) and not np.issubdtype(xyz.dtype, np.integer):
    raise ValueError(f'{name}: expected numbers, got dtype {xyz.dtype}')
  bad = ~np.isfinite(xyz).all(axis=1)
  if bad.any():
    raise ValueError(f'{name}: {int(bad.sum())} of {len(xyz)} points have NaN or infinite '
                     f'coordinates (first at index {int(np.argmax(bad))})')
  # float64 input keeps its precision; the distances are taken in float64 either way.
  return xyz if np.issubdtype(xyz.dtype, np.floating) else xyz.astype(np.float64)


def _check_labels(labels, n: int, name: str, what: str = 'points') -> np.ndarray:
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f'{name}: expected a (N,) array, got shape {labels.shape}')
  if len(labels) != n:
    raise ValueError(f'{name}: has {len(labels)} entries but there are {n} {what}')
  if len(labels) and not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'{name}: expected integer labels, got dtype {labels.dtype}')
  if len(labels) and labels.min() < 0:
    raise ValueError(f'{name}: negative label {int(labels.min())} (ignore is {IGNORE_LABEL})')
  return labels.astype(np.int64, copy=False)


def _check_radius(radius, name: str) -> float:
  radius = float(radius)
  if not np.isfinite(radius) or radius < 0:
    raise ValueError(f'{name} must be a finite number >= 0, got {radius}')
  return radius


# --------------------------------------------------------------------------------------------
# Clustering.

def cluster_points(xyz: np.ndarray, semantic: np.ndarray, radius: float, min_points: int,
                   ignore_classes: Iterable[int] = (), *, method: str = 'auto') -> np.ndarray:
  """(N,) int32 cluster id of each point, -1 for none.

  Points of the same class no farther than `radius` apart are connected; clusters are the
  connected components. Points of `ignore_classes` (classes without instances, e.g. wall and
  floor) and of IGNORE_LABEL get -1, and so do components of fewer than `min_points` points.
  Ids are consecutive 0..K-1, numbered in the order of each cluster's smallest point index.
  `method`: 'grid' (fast on dense shifted sets), 'pairs' (KD-tree pair search, fast on sparse
  sets) or 'auto' (either, by the density of the cells); all give the same clusters.
  """
  xyz = _check_xyz(xyz, 'xyz')
  semantic = _check_labels(semantic, len(xyz), 'semantic')
  radius = _check_radius(radius, 'radius')
  min_points = int(min_points)
  if min_points < 0:
    raise ValueError(f'min_points must be >= 0, got {min_points}')
  if method not in METHODS:
    raise ValueError(f'unknown method {method!r}; one of {METHODS}')

  out = np.full(len(xyz), -1, np.int32)
  skip = np.unique(np.r_[np.asarray(list(ignore_classes), np.int64), IGNORE_LABEL])
  active = np.flatnonzero(~np.isin(semantic, skip))
  if len(active) == 0:
    return out
  points = xyz[active].astype(np.float64)
  classes = semantic[active]
  if method != 'pairs' and radius > 0 and \
      np.abs(points).max() / (radius / np.sqrt(3)) < _MAX_CELL_COORD:
    component = _grid_components(points, classes, radius,
                                 _AUTO_MIN_OCCUPANCY if method == 'auto' else 0.0)
  else:
    component = _pair_components(points, classes, radius)

  # Components -> consecutive ids by smallest member; `active` is increasing, so the first
  # occurrence of a component in it is its smallest original point index.
  _, first, inverse, counts = np.unique(component, return_index=True, return_inverse=True,
                                        return_counts=True)
  keep = counts >= max(min_points, 1)
  rank = np.full(len(counts), -1, np.int64)
  kept = np.flatnonzero(keep)
  rank[kept[np.argsort(first[kept], kind='stable')]] = np.arange(len(kept))
  out[active] = rank[inverse.reshape(-1)]
  return out


def _pair_components(points: np.ndarray, classes: np.ndarray, radius: float) -> np.ndarray:
  """Component label per point by an all-pairs radius search within each class."""
  edges = []
  for c in np.unique(classes):
    members = np.flatnonzero(classes == c)
    if len(members) > 1:
      pairs = cKDTree(points[members]).query_pairs(radius, output_type='ndarray')
      edges.append(members[pairs])
  return _components(len(points), np.concatenate(edges) if edges else np.zeros((0, 2), np.int64))


def _components(n: int, edges: np.ndarray) -> np.ndarray:
  """Component label of each of n nodes of an undirected edge list (E, 2)."""
  graph = sparse.coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])),
                            shape=(n, n))
  return connected_components(graph, directed=False)[1]


def _grid_components(points: np.ndarray, classes: np.ndarray, radius: float,
                     min_occupancy: float = 0.0) -> np.ndarray:
  """Component label per point, the same partition as _pair_components (module docstring);
  hands over to _pair_components when the mean cell occupancy is below min_occupancy."""
  n = len(points)
  side = radius / np.sqrt(3) * _CELL_SHRINK
  cell = np.floor(points / side).astype(np.int64)
  order = np.lexsort((cell[:, 2], cell[:, 1], cell[:, 0], classes))
  p, cell, cls = points[order], cell[order], classes[order]
  new = np.ones(n, bool)
  new[1:] = (cell[1:] != cell[:-1]).any(axis=1) | (cls[1:] != cls[:-1])
  start = np.flatnonzero(new)
  count = np.diff(np.r_[start, n])
  if (count.astype(np.float64) ** 2).sum() < min_occupancy * n:
    return _pair_components(points, classes, radius)
  cell_of = np.cumsum(new) - 1
  cell_xyz, cell_cls = cell[start], cls[start]

  # Candidate cell pairs: the same class and at most 2 cells apart on every axis, which holds
  # for every two points within radius = sqrt(3) cells.
  candidates = []
  bounds = np.flatnonzero(np.r_[True, cell_cls[1:] != cell_cls[:-1], True])
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    if hi - lo > 1:
      tree = cKDTree(cell_xyz[lo:hi].astype(np.float64))
      candidates.append(tree.query_pairs(2.5, p=np.inf, output_type='ndarray') + lo)
  pairs = np.concatenate(candidates) if candidates else np.zeros((0, 2), np.int64)
  a, b = pairs[:, 0], pairs[:, 1]

  # A representative per cell, the point nearest the cell's centre: close cells of a dense
  # object are joined by it without looking at their other points.
  centre_dist = ((p - (cell + 0.5) * side) ** 2).sum(axis=1)
  rep = np.lexsort((centre_dist, cell_of))[start]
  accept = _dist2(p[rep[a]], p[rep[b]]) <= radius * radius
  # Bounding boxes of the cells' points give a lower bound on their closest pair.
  box_lo = np.minimum.reduceat(p, start, axis=0)
  box_hi = np.maximum.reduceat(p, start, axis=0)
  gap = np.maximum(0.0, np.maximum(box_lo[b] - box_hi[a], box_lo[a] - box_hi[b]))
  open_ = ~accept & ((gap ** 2).sum(axis=1) <= radius * radius)
  open_ &= (count[a] > 1) | (count[b] > 1)  # a single pair of points is settled by `accept`

  label = _components(len(start), pairs[accept])
  a, b = a[open_], b[open_]
  work = count[a] * count[b]
  by_work = np.argsort(work, kind='stable')
  a, b, work = a[by_work], b[by_work], work[by_work]

  # Exact checks, cheapest first, each batch only for pairs still in different components.
  small = work <= _ENUMERATE_MAX_PAIRS
  sa, sb, swork = a[small], b[small], work[small]
  joined = [pairs[accept]]
  done = np.r_[0, np.cumsum(swork)]  # point pairs before each cell pair
  i = 0
  while i < len(sa):
    j = max(i + 1, int(np.searchsorted(done, done[i] + _CHUNK_PAIRS, side='right')) - 1)
    ca, cb = sa[i:j], sb[i:j]
    still = label[ca] != label[cb]
    ca, cb = ca[still], cb[still]
    if len(ca):
      hit = _any_close(p, start, count, ca, cb, radius)
      if hit.any():
        joined.append(np.stack([ca[hit], cb[hit]], axis=1))
        label = _components(len(start), np.concatenate(joined))
    i = j

  # Few and large (two dense cells of different components): a nearest-neighbour query each.
  parent = {}
  def find(x):
    while parent.get(x, x) != x:
      x = parent[x]
    return x
  for ca, cb in zip(a[~small], b[~small]):
    ra, rb = find(label[ca]), find(label[cb])
    if ra == rb:
      continue
    pa = p[start[ca]:start[ca] + count[ca]]
    pb = p[start[cb]:start[cb] + count[cb]]
    if len(pa) > len(pb):
      pa, pb = pb, pa
    dist, _ = cKDTree(pb).query(pa, k=1, distance_upper_bound=radius * (1 + 1e-12))
    if (dist <= radius).any():
      parent[ra] = rb
  if parent:
    roots = np.unique(label)
    label = np.array([find(x) for x in roots])[np.searchsorted(roots, label)]

  out = np.empty(n, np.int64)
  out[order] = label[cell_of]
  return out


def _dist2(u: np.ndarray, v: np.ndarray) -> np.ndarray:
  return ((u - v) ** 2).sum(axis=1)


def _any_close(p: np.ndarray, start: np.ndarray, count: np.ndarray, ca: np.ndarray,
               cb: np.ndarray, radius: float) -> np.ndarray:
  """(len(ca),) bool: whether cells ca[k] and cb[k] have two points within radius, by
  enumerating all point pairs of each cell pair at once."""
  na, nb = count[ca], count[cb]
  work = na * nb
  owner = np.repeat(np.arange(len(ca)), work)
  t = np.arange(work.sum()) - np.repeat(np.cumsum(work) - work, work)
  nb_rep = nb[owner]
  u = start[ca][owner] + t // nb_rep
  v = start[cb][owner] + t % nb_rep
  close = _dist2(p[u], p[v]) <= radius * radius
  return np.bincount(owner[close], minlength=len(ca)) > 0


# --------------------------------------------------------------------------------------------
# Dual-set proposals, IoU with the ground truth, NMS.

def propose(xyz: np.ndarray, offsets: np.ndarray, semantic_pred: np.ndarray, radius: float,
            min_points: int, ignore_classes: Iterable[int] = (),
            shift_radius: float | None = None, *, method: str = 'auto') -> Proposals:
  """PointGroup's proposals: clusters on `xyz` (radius) and on `xyz + offsets`
  (shift_radius, default radius), both with min_points and ignore_classes; the clusters of
  the original coordinates come first, then those of the shifted ones. Each proposal's class
  is the predicted class of its points (the same for all of them by construction). Identical
  clusters of the two sets stay two proposals, as in PointGroup: NMS resolves them.
  """
  xyz = _check_xyz(xyz, 'xyz')
  offsets = _check_xyz(offsets, 'offsets')
  if len(offsets) != len(xyz):
    raise ValueError(f'offsets: has {len(offsets)} rows but xyz has {len(xyz)} points')
  semantic_pred = _check_labels(semantic_pred, len(xyz), 'semantic_pred')
  radius = _check_radius(radius, 'radius')
  shift_radius = radius if shift_radius is None else _check_radius(shift_radius, 'shift_radius')
  ignore_classes = list(ignore_classes)
  shifted = xyz + offsets  # in the inputs' precision, as a caller's own xyz + offsets would be
  sets = [cluster_points(coords, semantic_pred, r, min_points, ignore_classes, method=method)
          for coords, r in ((xyz, radius), (shifted, shift_radius))]
  return concatenate([proposals_from_clusters(ids, semantic_pred) for ids in sets])


def _membership_matrix(rows: np.ndarray, cols: np.ndarray, num_rows: int,
                       num_cols: int) -> sparse.csr_matrix:
  return sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)),
                           shape=(num_rows, num_cols))


def proposal_gt_iou(proposals: Proposals, gt_instance: np.ndarray) -> np.ndarray:
  """(P, K) float32 IoU of each proposal with each ground-truth instance 1..K (column k - 1
  for instance k; 0 = no instance; K = the largest id, missing ids give zero columns)."""
  gt = _check_labels(gt_instance, len(gt_instance), 'gt_instance')
  num_gt = int(gt.max(initial=0))
  if len(proposals.point_idx) and proposals.point_idx.max() >= len(gt):
    raise ValueError(f'proposal_gt_iou: proposals index point {proposals.point_idx.max()} but '
                     f'gt_instance has {len(gt)} points')
  num = proposals.num_proposals
  if num == 0 or num_gt == 0:
    return np.zeros((num, num_gt), np.float32)
  member_gt = gt[proposals.point_idx]
  on_gt = member_gt > 0
  # Intersections by counting (proposal, instance) pairs of the members: O(M), no P x N x K.
  inter = np.bincount(proposals.proposal_idx[on_gt] * num_gt + member_gt[on_gt] - 1,
                      minlength=num * num_gt).reshape(num, num_gt)
  gt_size = np.bincount(gt, minlength=num_gt + 1)[1:]
  union = proposals.sizes()[:, None] + gt_size[None, :] - inter
  return (inter / np.maximum(union, 1)).astype(np.float32)


def mask_iou(masks: np.ndarray | Proposals | sparse.spmatrix,
             num_points: int | None = None) -> np.ndarray:
  """(P, P) float32 IoU between all pairs of masks (dense (P, N) bool, sparse, or Proposals)."""
  m = _as_sparse_masks(masks, num_points)
  inter = (m @ m.T).toarray().astype(np.float64)
  size = np.diag(inter)
  union = size[:, None] + size[None, :] - inter
  return (inter / np.maximum(union, 1)).astype(np.float32)


def _as_sparse_masks(masks, num_points: int | None) -> sparse.csr_matrix:
  if isinstance(masks, Proposals):
    n = int(masks.point_idx.max(initial=-1)) + 1 if num_points is None else num_points
    return masks.sparse_masks(n)
  if sparse.issparse(masks):
    return sparse.csr_matrix(masks, dtype=np.int32)
  masks = np.asarray(masks)
  if masks.ndim != 2:
    raise ValueError(f'masks: expected a (P, N) array, got shape {masks.shape}')
  rows, cols = np.nonzero(masks)
  return _membership_matrix(rows, cols, masks.shape[0], masks.shape[1])


def nms(masks_or_proposals: np.ndarray | Proposals | sparse.spmatrix, scores: np.ndarray,
        iou_threshold: float) -> np.ndarray:
  """Greedy non-maximum suppression on mask IoU: int64 indices of the kept masks, best score
  first. A mask is dropped when its IoU with an already kept one exceeds iou_threshold
  (PointGroup: 0.3). Equal scores keep the lower index first."""
  m = _as_sparse_masks(masks_or_proposals, None)
  scores = np.asarray(scores, np.float64).reshape(-1)
  if len(scores) != m.shape[0]:
    raise ValueError(f'scores: has {len(scores)} entries but there are {m.shape[0]} masks')
  if np.isnan(scores).any():
    raise ValueError(f'scores: {int(np.isnan(scores).sum())} NaN scores')
  iou_threshold = float(iou_threshold)
  if np.isnan(iou_threshold):
    raise ValueError('iou_threshold is NaN')
  if len(scores) == 0:
    return np.zeros(0, np.int64)
  iou = mask_iou(m)
  order = np.argsort(-scores, kind='stable')
  suppressed = np.zeros(len(scores), bool)
  kept = []
  for i in order:
    if suppressed[i]:
      continue
    kept.append(i)
    suppressed |= iou[i] > iou_threshold
  return np.asarray(kept, np.int64)

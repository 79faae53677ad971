"""Per-scene geometric preprocessing (METHOD.md, "Preprocessing, once per scene"): normals and
curvature, regions, region adjacency and, for labelled scenes, ground-truth boundary points."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from ws3d_jax.geometry.adjacency import region_adjacency
from ws3d_jax.geometry.boundary import label_boundaries
from ws3d_jax.geometry.knn import knn
from ws3d_jax.geometry.normals import estimate_normals
from ws3d_jax.geometry.oversegment import oversegment

IGNORE_LABEL = 255  # the readers' ignore value (ws3d_jax.data.labels.IGNORE_LABEL)


@dataclasses.dataclass(frozen=True)
class PreprocessParams:
  """Parameters of preprocess_scene; lengths in metres. Defaults: ScanNet meshes (vertices
  about 2-3 cm apart). See oversegment() for the region-growing fields."""
  normal_k: int = 10              # neighbours of the normal / curvature covariance
  grow_k: int = 8                 # neighbours a region grows to
  max_angle_deg: float = 5.0      # normal angle between neighbours grown into one region
  max_curvature: float = 0.1      # only flatter points continue the growth
  max_edge_length: float = 0.1    # growth does not jump gaps wider than this
  min_region_size: int = 10       # smaller regions merge into a neighbour
  max_region_points: int = 150    # larger regions are halved ...
  max_extent: float = 1.0         # ... and so are wider ones
  adjacency_k: int = 16
  adjacency_radius: float = 0.1
  boundary_k: int = 16
  boundary_radius: float = 0.06   # about two point spacings each side of a label change


# Tuned on the real samples in ../shared/data for point-weighted region purity at a mean region
# size of at least 30 points (docs/preprocess_results.md); S3DIS has no real room there, so its
# set assumes rooms subsampled to about the ScanNet density (2-5 cm) and is untested on real data.
DATASET_PARAMS: dict[str, PreprocessParams] = {
    'scannet': PreprocessParams(),
    's3dis': PreprocessParams(max_edge_length=0.15, adjacency_radius=0.15,
                              boundary_radius=0.1),
    # Velodyne HDL-64 scans: rings tens of centimetres apart on the ground, so wider normal
    # neighbourhoods, longer links and larger regions; point count, not extent, caps the
    # dense near-range surfaces.
    'semantickitti': PreprocessParams(normal_k=24, grow_k=8, max_angle_deg=4.0,
                                      max_curvature=0.1, max_edge_length=0.3,
                                      min_region_size=10, max_region_points=200, max_extent=2.0,
                                      adjacency_k=16, adjacency_radius=0.5, boundary_k=16,
                                      boundary_radius=0.3),
}


def default_params(dataset: str) -> PreprocessParams:
  try:
    return DATASET_PARAMS[dataset]
  except KeyError:
    raise ValueError(f'no preprocessing defaults for data set {dataset!r}; '
                     f'known: {sorted(DATASET_PARAMS)}') from None


def preprocess_scene(xyz: np.ndarray, labels: np.ndarray | None = None,
                     ignore_label: int = IGNORE_LABEL,
                     params: PreprocessParams | Mapping[str, Any] | str | None = None
                     ) -> dict[str, np.ndarray]:
  """Everything the WS3D losses need from one scene's geometry.

  Args:
    xyz: (N, 3) point coordinates in metres.
    labels: optional (N,) semantic training ids; with them the result has 'boundary'.
    ignore_label: the label of unannotated points.
    params: a PreprocessParams, a dict of PreprocessParams fields (the rest default), a data
      set name of DATASET_PARAMS, or None for PreprocessParams().

  Returns a dict of numpy arrays:
    normals (N, 3) float32, unit length, sign arbitrary; curvature (N,) float32;
    region_id (N,) int32, contiguous 0..Q-1; region_pairs (E, 2) int32, i < j, sorted;
    boundary (N,) bool, only when labels are given.

  Raises ValueError on an empty cloud, a wrong shape, NaN / infinite coordinates or labels of
  the wrong length; the message names the problem, the caller adds the file.
  """
  xyz = _checked_points(xyz)
  params = resolve_params(params)
  neighbours = knn(xyz, max(params.grow_k, params.adjacency_k, params.boundary_k))
  normals, curvature = estimate_normals(xyz, params.normal_k)
  region_id = oversegment(
      xyz, normals, curvature, neighbours=neighbours, k=params.grow_k,
      max_angle_deg=params.max_angle_deg, max_curvature=params.max_curvature,
      max_edge_length=params.max_edge_length, min_region_size=params.min_region_size,
      max_region_points=params.max_region_points, max_extent=params.max_extent)
  out = {
      'normals': normals,
      'curvature': curvature,
      'region_id': region_id,
      'region_pairs': region_adjacency(xyz, region_id, params.adjacency_k,
                                       params.adjacency_radius, neighbours=neighbours),
  }
  if labels is not None:
    labels = _checked_labels(labels, len(xyz))
    out['boundary'] = label_boundaries(xyz, labels, ignore_label, params.boundary_k,
                                       params.boundary_radius, neighbours=neighbours)
  return out


def resolve_params(params: PreprocessParams | Mapping[str, Any] | str | None
                   ) -> PreprocessParams:
  """PreprocessParams from any of the forms preprocess_scene accepts."""
  if params is None:
    return PreprocessParams()
  if isinstance(params, PreprocessParams):
    return params
  if isinstance(params, str):
    return default_params(params)
  fields = {f.name for f in dataclasses.fields(PreprocessParams)}
  unknown = sorted(set(params) - fields)
  if unknown:
    raise ValueError(f'unknown preprocessing parameters {unknown}; known: {sorted(fields)}')
  return PreprocessParams(**params)


def _checked_points(xyz: np.ndarray) -> np.ndarray:
  xyz = np.asarray(xyz)
  if xyz.ndim != 2 or xyz.shape[1] != 3:
    raise ValueError(f'points must have shape (N, 3), got {xyz.shape}')
  if len(xyz) == 0:
    raise ValueError('empty point cloud: nothing to preprocess')
  finite = np.isfinite(xyz).all(axis=1)
  if not finite.all():
    bad = np.flatnonzero(~finite)
    raise ValueError(f'{len(bad)} of {len(xyz)} points have NaN or infinite coordinates '
                     f'(first rows: {bad[:5].tolist()})')
  return np.ascontiguousarray(xyz, np.float32)


def _checked_labels(labels: np.ndarray, n: int) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.shape != (n,):
    raise ValueError(f'labels must have shape ({n},) to match the points, got {labels.shape}')
  return labels.astype(np.int64)

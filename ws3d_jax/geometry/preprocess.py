"""Per-scene geometric preprocessing (METHOD.md, "Preprocessing, once per scene"): normals and
curvature, regions, region adjacency and, for labelled scenes, ground-truth boundary points."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from ws3d_jax.constants import IGNORE_LABEL
from ws3d_jax.geometry.adjacency import region_adjacency
from ws3d_jax.geometry.boundary import label_boundaries
from ws3d_jax.geometry.knn import knn
from ws3d_jax.geometry.normals import estimate_normals
from ws3d_jax.geometry.oversegment import oversegment


@dataclasses.dataclass(frozen=True)
class PreprocessParams:
  """Parameters of preprocess_scene; lengths in metres. Defaults: ScanNet meshes (vertices
  about 2-3 cm apart). See oversegment() for the region-growing fields."""
  normal_k: int = 10              # neighbours of the normal / curvature covariance
  grow_k: int = 8                 # neighbours a region grows to
  max_angle_deg: float = 5.0      # normal angle between neighbours grown into one region
  max_curvature: float = 0.1      # only flatter points continue the growth ...
  curvature_k: int = 0            # ... judged on the curvature averaged over this many neighbours
  max_edge_length: float = 0.1    # growth does not jump gaps wider than this
  max_step: float = np.inf        # height step (plus step_slope per metre) not grown across
  step_slope: float = 0.0         # between near-horizontal points (|normal z| > step_min_normal_z)
  step_min_normal_z: float = 0.9
  rough_by_proximity: bool = False  # leftover rough points grouped by proximity, not normals
  min_region_size: int = 6        # smaller regions merge into a neighbour ...
  distance_weight: float = 0.0    # ... across the link with the least normal angle + this times
  offset_weight: float = 0.0      # its length + this times its plane offset (+ feature term)
  max_region_points: int = 300    # larger regions are halved ...
  max_extent: float = 1.5         # ... and so are wider ones
  min_mean_region_size: float = 31.0  # then the smallest merge on until N / Q reaches this
  # Appearance (preprocess_scene's `features`: ScanNet RGB, SemanticKITTI remission), divided
  # by feature_scale. Ignored when no features are given.
  feature_scale: float = 255.0
  max_feature_diff: float = np.inf  # growth links with a larger per-channel difference are cut
  feature_weight: float = 0.0     # weight of the summed feature difference in the merge cost
  adjacency_k: int = 16
  adjacency_radius: float = 0.1
  boundary_k: int = 16
  boundary_radius: float = 0.06   # about two point spacings each side of a label change


# Tuned on the real samples in ../shared/data for point-weighted region purity at a mean region
# size of at least 30 points, the same set for every scene of a data set
# (docs/preprocess_results.md); S3DIS has no real room there, so its set assumes rooms
# subsampled to about the ScanNet density (2-5 cm) and is untested on real data.
# ScanNet: colour as a growth threshold or merge term gained at most 0.0003 purity (and lost up
# to 0.003) on the settings measured, so its weights are off (feature_scale maps RGB to 0..1).
DATASET_PARAMS: dict[str, PreprocessParams] = {
    'scannet': PreprocessParams(),
    's3dis': PreprocessParams(max_edge_length=0.15, adjacency_radius=0.15,
                              boundary_radius=0.1),
    # Velodyne HDL-64 scans: rings tens of centimetres apart on the ground, so wider normal
    # neighbourhoods, longer links and larger regions. Growth is strict (2 degrees, no kerb
    # steps) and leaves many fragments; vegetation (rough on average over 8 neighbours) is
    # grouped by proximity; fragments merge across short, coplanar links of similar
    # remission.
    'semantickitti': PreprocessParams(normal_k=24, grow_k=8, max_angle_deg=2.0,
                                      max_curvature=0.1, curvature_k=8, max_edge_length=0.3,
                                      max_step=0.005, step_slope=0.03, step_min_normal_z=0.9,
                                      rough_by_proximity=True, min_region_size=7,
                                      distance_weight=3.0, offset_weight=10.0,
                                      max_region_points=400, max_extent=3.5,
                                      min_mean_region_size=31.0, feature_scale=1.0,
                                      feature_weight=1.0, adjacency_k=16,
                                      adjacency_radius=0.5, boundary_k=16,
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
                     params: PreprocessParams | Mapping[str, Any] | str | None = None,
                     features: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Everything the WS3D losses need from one scene's geometry.

  Args:
    xyz: (N, 3) point coordinates in metres.
    labels: optional (N,) semantic training ids; with them the result has 'boundary'. They are
      never used to form the regions.
    ignore_label: the label of unannotated points.
    params: a PreprocessParams, a dict of PreprocessParams fields (the rest default), a data
      set name of DATASET_PARAMS, or None for PreprocessParams().
    features: optional (N,) or (N, F) per-point appearance in the data set's raw units (ScanNet
      / S3DIS RGB 0..255, SemanticKITTI remission 0..1); divided by params.feature_scale and
      used by the region growing and merging as params say. None: geometry only.

  Returns a dict of numpy arrays:
    normals (N, 3) float32, unit length, sign arbitrary; curvature (N,) float32;
    region_id (N,) int32, contiguous 0..Q-1; region_pairs (E, 2) int32, i < j, sorted;
    boundary (N,) bool, only when labels are given.

  Raises ValueError on an empty cloud, a wrong shape, NaN / infinite coordinates or features,
  or labels / features of the wrong length; the message names the problem, the caller adds the
  file.
  """
  xyz = _checked_points(xyz)
  params = resolve_params(params)
  if features is not None:
    features = _checked_features(features, len(xyz)) / np.float32(params.feature_scale)
  neighbours = knn(xyz, max(params.grow_k, params.adjacency_k, params.boundary_k))
  normals, curvature = estimate_normals(xyz, params.normal_k)
  region_id = oversegment(xyz, normals, curvature, neighbours=neighbours,
                          features=features, **oversegment_kwargs(params))
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


def oversegment_kwargs(params: PreprocessParams) -> dict[str, Any]:
  """The keyword arguments of oversegment() that a PreprocessParams sets."""
  return dict(
      k=params.grow_k, max_angle_deg=params.max_angle_deg, max_curvature=params.max_curvature,
      max_edge_length=params.max_edge_length, min_region_size=params.min_region_size,
      max_region_points=params.max_region_points, max_extent=params.max_extent,
      max_feature_diff=params.max_feature_diff, feature_weight=params.feature_weight,
      curvature_k=params.curvature_k, max_step=params.max_step, step_slope=params.step_slope,
      step_min_normal_z=params.step_min_normal_z,
      rough_by_proximity=params.rough_by_proximity,
      distance_weight=params.distance_weight, offset_weight=params.offset_weight,
      min_mean_region_size=params.min_mean_region_size)


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


def _checked_features(features: np.ndarray, n: int) -> np.ndarray:
  features = np.asarray(features)
  if features.ndim not in (1, 2) or len(features) != n:
    raise ValueError(f'features must have shape ({n},) or ({n}, F) to match the points, '
                     f'got {features.shape}')
  features = features.astype(np.float32)
  if not np.isfinite(features).all():
    raise ValueError('features hold NaN or infinite values')
  return features


def _checked_labels(labels: np.ndarray, n: int) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.shape != (n,):
    raise ValueError(f'labels must have shape ({n},) to match the points, got {labels.shape}')
  return labels.astype(np.int64)

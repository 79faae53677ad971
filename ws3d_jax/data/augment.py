"""Scene augmentations: rotation about the up axis, flips, scaling, jitter, colour jitter.

They move points but never add or drop any, so two augmented views of one scene keep the
same points and therefore the same region ids (what WS3D's unlabeled branch relies on).
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class AugmentParams:
  rotate: float = 2 * np.pi  # rotation about z drawn from [-rotate/2, rotate/2]
  flip_prob: float = 0.5  # per horizontal axis
  scale: tuple = (0.9, 1.1)
  jitter: float = 0.005  # metres, Gaussian per point
  colour_jitter: float = 0.05  # Gaussian on features in [0, 1], when colour_features
  colour_features: bool = True  # features are RGB (indoor) rather than remission (LiDAR)


def augment(xyz: np.ndarray, features: np.ndarray, rng: np.random.Generator,
            p: AugmentParams) -> tuple[np.ndarray, np.ndarray]:
  """One random view of a scene: (xyz, features), same points, same order."""
  xyz = xyz - xyz.mean(axis=0)
  angle = rng.uniform(-p.rotate / 2, p.rotate / 2)
  c, s = np.cos(angle), np.sin(angle)
  rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
  flips = np.where(rng.random(2) < p.flip_prob, -1.0, 1.0)
  scale = rng.uniform(*p.scale) if p.scale else 1.0
  xyz = (xyz @ rot.T) * np.array([flips[0], flips[1], 1.0]) * scale
  if p.jitter:
    xyz = xyz + rng.normal(0.0, p.jitter, xyz.shape)
  if p.colour_features and p.colour_jitter:
    features = np.clip(features + rng.normal(0.0, p.colour_jitter, features.shape), 0.0, 1.0)
  return xyz.astype(np.float32), features.astype(np.float32)

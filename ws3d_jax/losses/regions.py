"""Region-level quantities shared by the WS3D losses (METHOD.md, "Unlabeled branch").

Regions are global over the batch: every point carries a region id in [0, R), padding points
carry R (dropped by the segment ops).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ws3d_jax.sparse.ops import segment_pool


def region_predictions(point_logits, region_id, num_regions: int):
  """Max-pool per-point class logits over each region, then softmax: (p (R, C), confidence (R,)).

  Empty (padding) regions pool to zero logits, i.e. a uniform p; callers mask them.
  """
  pooled, _ = segment_pool(point_logits.astype(jnp.float32), region_id, num_regions, 'max')
  p = jax.nn.softmax(pooled, axis=-1)
  return p, p.max(axis=-1)


def region_embeddings(voxel_embeddings, point2voxel, region_id, num_regions: int):
  """Max-pool a stage's voxel embeddings over each region (each point reads its voxel at that
  stage), then L2-normalise: (R, D)."""
  padded = jnp.concatenate([voxel_embeddings, jnp.zeros((1, voxel_embeddings.shape[-1]), voxel_embeddings.dtype)])
  pooled, _ = segment_pool(padded[point2voxel].astype(jnp.float32), region_id, num_regions, 'max')
  return pooled * jax.lax.rsqrt(jnp.maximum(jnp.sum(pooled ** 2, -1, keepdims=True), 1e-12))


def region_majority_labels(labels, region_id, num_regions: int, num_classes: int, ignore_label: int):
  """Ground-truth label of each region: the majority of its labelled points; ignore_label where
  a region has none."""
  valid = (labels != ignore_label) & (region_id < num_regions)
  onehot = jax.nn.one_hot(jnp.where(valid, labels, 0), num_classes, dtype=jnp.float32) * valid[:, None]
  hist = jax.ops.segment_sum(onehot, jnp.where(valid, region_id, num_regions), num_regions + 1)[:num_regions]
  return jnp.where(hist.sum(-1) > 0, jnp.argmax(hist, -1), ignore_label).astype(jnp.int32)

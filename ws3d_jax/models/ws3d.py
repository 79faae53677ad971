"""The WS3D segmentation network: MinkUNet plus one projection head per contrasted encoder stage.

The multi-stage region contrast (METHOD.md) pools each stage's embeddings over regions; the
heads are small per-voxel MLPs so that the contrast shapes a space of its own rather than the
backbone features the classifier reads directly (the usual SimCLR-style projection).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ws3d_jax.models.minkunet import BackboneSpec, MinkUNet
from ws3d_jax.sparse.kernel_map import Geometry


class ProjectionHead(nn.Module):
  dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(x.shape[-1], dtype=self.dtype)(x))
    return nn.Dense(self.dim, dtype=self.dtype)(x).astype(jnp.float32)


class WS3DNet(nn.Module):
  """Returns MinkUNet's outputs with ``embeddings``: one (N_stage, dim) array per stage of
  ``contrast_stages`` (indices into the 5 encoder stages, stride 1 .. 16)."""
  num_classes: int
  spec: BackboneSpec = BackboneSpec()
  dtype: Any = jnp.float32
  bn_axis: str | None = None
  embed_dim: int = 64
  contrast_stages: tuple = (0, 1, 2, 3, 4)

  @nn.compact
  def __call__(self, feats, geom: Geometry, train: bool = False):
    out = MinkUNet(self.num_classes, self.spec, self.dtype, self.bn_axis, name='backbone')(feats, geom, train)
    embeddings = tuple(ProjectionHead(self.embed_dim, self.dtype, name=f'head_stage{m}')(out.stages[m])
                       for m in self.contrast_stages)
    return out.replace(embeddings=embeddings, contrast_stages=tuple(self.contrast_stages))

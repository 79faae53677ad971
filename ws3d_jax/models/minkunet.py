"""MinkUNet (MinkowskiNet Res16UNet layout) on the JAX sparse engine.

Five encoder stages at strides 1, 2, 4, 8, 16 (the stem, then four down-steps with residual
blocks), a mirrored decoder with skip connections, and a 1x1 classifier. (``minkunet_test``, for
the test suite only, has two: strides 1 and 2.) Besides per-point
logits it returns every encoder stage's voxel features: WS3D's multi-stage region contrast
pools regions at each of them, through ``Geometry.point2voxel[stage]``.

Differences from MinkowskiEngine's Res16UNet, on purpose: the stem is a 3x3x3 submanifold
convolution (ME uses 5x5x5), so every convolution in the network is one of the engine's three.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from ws3d_jax.sparse.kernel_map import Geometry
from ws3d_jax.sparse.layers import MaskedBatchNorm, StridedConv3d, SubMConv3d, TransposedConv3d

NUM_LEVELS = 5  # of the paper's backbones
PLANES = (32, 64, 128, 256, 256, 128, 96, 96)
PRESETS = {  # blocks per stage: the encoder stages after the stem, then as many decoder stages
    'minkunet14': (1, 1, 1, 1, 1, 1, 1, 1),
    'minkunet18': (2, 2, 2, 2, 2, 2, 2, 2),
    'minkunet34': (2, 3, 4, 6, 2, 2, 2, 2),
    # For tests of the wiring, not of learning: every part of the method (both strided
    # convolutions, skip, multi-stage contrast) with a quarter of minkunet14's layers, so a
    # train step compiles in seconds.
    'minkunet_test': (1, 1),
}


def levels_of(name: str) -> int:
  """Strides of a preset: the stem's, then one per down-step."""
  if name not in PRESETS:
    raise ValueError(f'unknown backbone {name!r}; choose one of {sorted(PRESETS)}')
  return _levels(PRESETS[name])


def _levels(blocks: tuple) -> int:
  return len(blocks) // 2 + 1


def planes_of(levels: int) -> tuple:
  """The encoder's first and the decoder's last widths of PLANES, for a network of ``levels``."""
  return PLANES[:levels - 1] + PLANES[len(PLANES) - (levels - 1):]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  blocks: tuple = PRESETS['minkunet34']
  planes: tuple = PLANES
  stem: int = 32
  impl: tuple = ('pairs',) * NUM_LEVELS  # submanifold dataflow per level

  # Pairs per chunk of the 'pairs' convolution. Longer chunks mean fewer, larger matmuls and
  # fewer per-chunk weight copies, at the price of up to 26 * chunk padding slots per level;
  # 512 was fastest on a real LiDAR scan at 32 and 64 channels (docs/benchmarks.md).
  chunk: int = 512

  @property
  def num_levels(self) -> int:
    return _levels(self.blocks)

  def chunk_sizes(self) -> tuple:
    """Chunk length per level for 'pairs' (None for 'dense' and 'fused', which need no pair map)."""
    return tuple(self.chunk if impl == 'pairs' else None for impl in self.impl)


def backbone_spec(name: str = 'minkunet34', impl: str | Sequence[str] = 'pairs', **kw) -> BackboneSpec:
  levels = levels_of(name)
  impl = (impl,) * levels if isinstance(impl, str) else tuple(impl)
  if len(impl) != levels:
    raise ValueError(f'{name} has {levels} levels but model.impl names {len(impl)}: {impl}')
  return BackboneSpec(blocks=PRESETS[name], planes=planes_of(levels), impl=impl, **kw)


@struct.dataclass
class NetOutputs:
  """What the networks return (MinkUNet; WS3DNet and PointGroupNet add their fields), and what
  the losses read. P points, V voxels at stride 1."""
  logits: jax.Array  # (P, classes) per point; padding points read zeros
  voxel_logits: jax.Array  # (V, classes)
  features: jax.Array  # (V, C) last decoder features at stride 1, for extra heads
  stages: tuple  # encoder features at strides 1, 2, 4, ...
  embeddings: tuple = ()  # WS3DNet: the projection of each contrasted stage
  contrast_stages: tuple = struct.field(pytree_node=False, default=())  # WS3DNet: which stage each embedding is of
  offsets: jax.Array | None = None  # PointGroupNet: (P, 3) per point, to its instance centre
  proposal_scores: jax.Array | None = None  # PointGroupNet: (K,) ScoreNet logits of the proposals


class BasicBlock(nn.Module):
  features: int
  impl: str
  dtype: Any
  bn_axis: str | None

  @nn.compact
  def __call__(self, x, geom: Geometry, level: int, train: bool):
    mask = geom.levels[level].valid
    bn = lambda: MaskedBatchNorm(use_running_average=not train, axis_name=self.bn_axis)
    residual = x
    y = SubMConv3d(self.features, self.impl, self.dtype)(x, geom, level)
    y = nn.relu(bn()(y, mask))
    y = SubMConv3d(self.features, self.impl, self.dtype)(y, geom, level)
    y = bn()(y, mask)
    if residual.shape[-1] != self.features:
      residual = nn.Dense(self.features, use_bias=False, dtype=self.dtype)(residual)
      residual = bn()(residual, mask)
    return nn.relu(y + residual)


class MinkUNet(nn.Module):
  num_classes: int
  spec: BackboneSpec = BackboneSpec()
  dtype: Any = jnp.float32
  bn_axis: str | None = None

  @nn.compact
  def __call__(self, feats, geom: Geometry, train: bool = False):
    s = self.spec
    bn = lambda: MaskedBatchNorm(use_running_average=not train, axis_name=self.bn_axis)
    block = lambda c, level: BasicBlock(c, s.impl[level], self.dtype, self.bn_axis)
    valid = lambda level: geom.levels[level].valid

    x = SubMConv3d(s.stem, s.impl[0], self.dtype)(feats, geom, 0)
    x = nn.relu(bn()(x, valid(0)))
    stages = [x]
    down = s.num_levels - 1
    for i in range(down):
      x = StridedConv3d(x.shape[-1], self.dtype, s.impl[i])(x, geom, i)
      x = nn.relu(bn()(x, valid(i + 1)))
      for _ in range(s.blocks[i]):
        x = block(s.planes[i], i + 1)(x, geom, i + 1, train)
      stages.append(x)

    for j in range(down):
      level = down - 1 - j
      x = TransposedConv3d(s.planes[down + j], self.dtype, s.impl[level])(x, geom, level)
      x = nn.relu(bn()(x, valid(level)))
      x = jnp.concatenate([x, stages[level].astype(x.dtype)], axis=-1)
      for _ in range(s.blocks[down + j]):
        x = block(s.planes[down + j], level)(x, geom, level, train)

    voxel_logits = nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
    padded = jnp.concatenate([voxel_logits, jnp.zeros((1, self.num_classes), jnp.float32)])
    return NetOutputs(logits=padded[geom.point2voxel[0]], voxel_logits=voxel_logits, features=x,
                      stages=tuple(stages))

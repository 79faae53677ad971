"""PointGroup on the WS3D network (METHOD.md, "Instance segmentation"; Jiang et al., CVPR 2020).

Beside WS3DNet's semantic logits and contrast embeddings it predicts, per point, the offset
from the point to the centre of its instance; clustering on the original and on the shifted
coordinates (``geometry/cluster.py``, on the host) proposes instances, and the ScoreNet rates
each proposal.

The ScoreNet here is PointNet-like: a per-point MLP on the backbone's last decoder features and
the point's position relative to the proposal centre, max-pooled over the proposal's points,
then an MLP to one logit. PointGroup's own ScoreNet is a small sparse U-Net over each voxelised
proposal; the pooled MLP keeps every proposal in one padded segment op (static shapes, no
per-proposal voxelisation inside the step) and is what docs/method_notes.md records as our
choice.

Proposals enter as a padded membership list (``Proposals``): ``point[k]`` belongs to proposal
``id[k]`` (a point may belong to two proposals: one from each coordinate set); padding entries
have ``id == num_proposals`` and fall into a dropped segment.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ws3d_jax.models.ws3d import WS3DNet
from ws3d_jax.sparse.kernel_map import Geometry


@struct.dataclass
class Proposals:
  """Instance proposals as a padded membership list, and the ScoreNet's target of each."""
  point: np.ndarray  # (M,) int32, the point of membership k
  id: np.ndarray  # (M,) int32, its proposal; num_proposals on padding entries
  valid: np.ndarray  # (K,) bool, a real proposal
  target: np.ndarray  # (K,) float32, the ScoreNet's soft IoU target (training)

  @classmethod
  def empty(cls, num_proposals: int, num_members: int) -> 'Proposals':
    """A proposal set with nothing in it (the shape the step compiles for)."""
    return cls(point=np.zeros(num_members, np.int32), id=np.full(num_members, num_proposals, np.int32),
               valid=np.zeros(num_proposals, bool), target=np.zeros(num_proposals, np.float32))


class OffsetHead(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(x.shape[-1], dtype=self.dtype)(x))
    return nn.Dense(3, dtype=self.dtype)(x).astype(jnp.float32)


class ScoreNet(nn.Module):
  hidden: int = 32
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, point_features, xyz, proposals: Proposals):
    num = proposals.valid.shape[0]
    ids = proposals.id
    idx = jnp.clip(proposals.point, 0, point_features.shape[0] - 1)
    member = (ids < num).astype(jnp.float32)[:, None]
    # The proposal centre (mean of its points) makes the pooled shape translation invariant.
    total = jax.ops.segment_sum(xyz[idx] * member, ids, num + 1)[:num]
    count = jax.ops.segment_sum(member, ids, num + 1)[:num]
    centre = jnp.concatenate([total / jnp.maximum(count, 1.0), jnp.zeros((1, 3))])
    x = jnp.concatenate([point_features[idx].astype(jnp.float32), xyz[idx] - centre[ids]], -1)
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x)).astype(jnp.float32)
    pooled = jax.ops.segment_max(jnp.where(member > 0, x, -jnp.inf), ids, num + 1)[:num]
    pooled = jnp.where(jnp.isfinite(pooled), pooled, 0.0)  # empty (padding) proposals
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(pooled))
    return nn.Dense(1, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)


class PointGroupNet(nn.Module):
  """``ws3d``'s outputs plus 'offsets' (P, 3) per point and, when proposals are given,
  'proposal_scores' (num_proposals,) logits."""
  ws3d: WS3DNet
  score_hidden: int = 32

  @property
  def spec(self):
    return self.ws3d.spec

  @nn.compact
  def __call__(self, feats, geom: Geometry, train: bool = False, xyz=None, proposals: Proposals | None = None):
    dtype = self.ws3d.dtype
    out = self.ws3d(feats, geom, train)
    voxel_offsets = OffsetHead(dtype, name='offset_head')(out.features)
    p2v = geom.point2voxel[0]
    offsets = jnp.concatenate([voxel_offsets, jnp.zeros((1, 3), jnp.float32)])[p2v]
    # Built on every call (also without proposals) so that init creates its parameters.
    point_features = jnp.concatenate([out.features, jnp.zeros((1, out.features.shape[-1]), out.features.dtype)])[p2v]
    if proposals is None:
      proposals = Proposals.empty(1, 1)
    if xyz is None:
      xyz = jnp.zeros((p2v.shape[0], 3), jnp.float32)
    scores = ScoreNet(self.score_hidden, dtype, name='score_net')(point_features, xyz, proposals)
    return out.replace(offsets=offsets, proposal_scores=scores)

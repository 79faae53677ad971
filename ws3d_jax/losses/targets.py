"""What the losses are given besides the model outputs: typed arrays, not a data format.

A ``Targets`` is a pytree (flax.struct), so it travels through jit and pmap like a dict; the
training step builds it from the pipeline's batch (the task's ``targets`` function), which keeps
every key name of the pipeline out of the loss modules. Shapes are per device shard: P points,
R regions (plus one padding region), E region pairs; padding points read region R.
"""
from __future__ import annotations

import jax
from flax import struct


@struct.dataclass
class Regions:
  """The over-segmentation regions of a batch and their adjacency (METHOD.md, "Regions")."""
  id: jax.Array  # (P,) int32, region of each point; padding points: R
  valid: jax.Array  # (R,) bool, a real region
  scene: jax.Array  # (R,) int32, the batch scene a region belongs to (-1: padding)
  labeled: jax.Array  # (R,) bool, the region is in a labeled scene
  pairs: jax.Array  # (E, 2) int32, adjacent regions; padding rows: (R, R)
  pair_valid: jax.Array  # (E,) bool
  pair_boundary: jax.Array  # (E,) float32, w_ij: 1 when both regions hold boundary points

  @property
  def count(self) -> int:
    return self.valid.shape[0]


@struct.dataclass
class Instances:
  """Instance targets of the labeled scenes (PointGroup's offset and ScoreNet terms)."""
  id: jax.Array  # (P,) int32, instance of each point, unique over the batch; 0: none
  offsets: tuple  # per view, (P, 3) float32: the vector to the point's instance centre
  proposal_target: jax.Array  # (K,) float32, the ScoreNet's soft IoU target of each proposal
  proposal_valid: jax.Array  # (K,) bool


@struct.dataclass
class Targets:
  labels: jax.Array  # (P,) int32 training ids, the ignore label where a point has none
  regions: Regions | None = None
  instances: Instances | None = None

"""Losses on labeled points: cross-entropy and the boundary network's focal loss."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits, labels, ignore_label: int, axis_name: str | None = None):
  """Mean over points whose label is not ignored (0 when there are none).

  With ``axis_name`` (inside a pmap whose step averages the gradients over that axis) the sum is
  divided by the mean count of labeled points per device instead of this device's count: the
  averaged gradient is then the gradient of the mean over every labeled point of the whole
  batch, as on one device, however unevenly the labels fall on the devices."""
  valid = labels != ignore_label
  losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), jnp.where(valid, labels, 0))
  count = valid.sum().astype(jnp.float32)
  if axis_name is not None:
    count = jax.lax.pmean(count, axis_name)
  return jnp.sum(losses * valid) / jnp.maximum(count, 1.0)


def focal_loss(logits, targets, valid, alpha: float = 2.0):
  """Binary focal loss of METHOD.md, from logits for stability:

      L = -(1/N) sum_i [ (1 - b_i)^a g_i log b_i + b_i^a (1 - g_i) log(1 - b_i) ],  b = sigmoid(z)
  """
  z = logits.astype(jnp.float32)
  b = jax.nn.sigmoid(z)
  g = targets.astype(jnp.float32)
  per_point = -((1 - b) ** alpha * g * jax.nn.log_sigmoid(z) + b ** alpha * (1 - g) * jax.nn.log_sigmoid(-z))
  valid = valid.astype(jnp.float32)
  return jnp.sum(per_point * valid) / jnp.maximum(valid.sum(), 1.0)

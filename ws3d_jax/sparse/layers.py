"""Flax modules over the sparse ops. Each takes voxel features plus the batch ``Geometry``."""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ws3d_jax.sparse import fused, ops
from ws3d_jax.sparse.kernel_map import NUM_OFFSETS, Geometry

# He initialisation over the kernel's fan-in (offsets x input channels).
_kernel_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'truncated_normal')


class SubMConv3d(nn.Module):
  """Submanifold 3x3x3 convolution at one level: outputs only where inputs are."""
  features: int
  impl: str = 'pairs'  # 'pairs' or 'dense', see ops.py
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, geom: Geometry, level: int):
    w = self.param('kernel', _kernel_init, (NUM_OFFSETS, x.shape[-1], self.features), jnp.float32)
    x, w = x.astype(self.dtype), w.astype(self.dtype)
    if self.impl == 'pairs':
      pairs = geom.pairs[level]
      if pairs is None:
        raise ValueError(f"level {level} has no pair map: build the geometry with a chunk size for it "
                         "or use impl='dense'")
      return ops.submanifold_conv_pairs(x, w, pairs)
    if self.impl == 'dense':
      return ops.submanifold_conv_dense(x, w, geom.levels[level].nbr)
    if self.impl == 'fused':
      return fused.submanifold_conv_fused(x, w, geom.levels[level].nbr)
    raise ValueError(f"unknown convolution impl {self.impl!r}; use 'pairs', 'dense' or 'fused'")


class StridedConv3d(nn.Module):
  """2x2x2 stride-2 convolution from level l to level l+1 ('fused': the CPU kernel, otherwise the
  pure-JAX pairs of the down map)."""
  features: int
  dtype: Any = jnp.float32
  impl: str = 'pairs'

  @nn.compact
  def __call__(self, x, geom: Geometry, level: int):
    w = self.param('kernel', _kernel_init, (8, x.shape[-1], self.features), jnp.float32)
    conv = fused.strided_conv_fused if self.impl == 'fused' else ops.strided_conv
    return conv(x.astype(self.dtype), w.astype(self.dtype), geom.down[level])


class TransposedConv3d(nn.Module):
  """2x2x2 transposed convolution from level l+1 back onto the voxels of level l."""
  features: int
  dtype: Any = jnp.float32
  impl: str = 'pairs'

  @nn.compact
  def __call__(self, x, geom: Geometry, level: int):
    w = self.param('kernel', _kernel_init, (8, x.shape[-1], self.features), jnp.float32)
    conv = fused.transposed_conv_fused if self.impl == 'fused' else ops.transposed_conv
    return conv(x.astype(self.dtype), w.astype(self.dtype), geom.down[level])


class MaskedBatchNorm(nn.Module):
  """BatchNorm whose statistics count only real voxels; padding rows come out as zeros.

  ``axis_name`` makes the statistics global over a pmap axis (cross-device BN).
  """
  use_running_average: bool | None = None
  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, mask, use_running_average: bool | None = None):
    use_ra = nn.merge_param('use_running_average', self.use_running_average, use_running_average)
    c = x.shape[-1]
    ra_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable('batch_stats', 'var', lambda: jnp.ones((c,), jnp.float32))
    scale = self.param('scale', nn.initializers.ones, (c,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    m = mask[:, None].astype(jnp.float32)
    if use_ra:
      y = (x.astype(jnp.float32) - ra_mean.value) * jax.lax.rsqrt(ra_var.value + self.epsilon) * scale + bias
      return (y * m).astype(x.dtype)
    y, mean, var = masked_batch_norm(x.astype(jnp.float32), m, scale, bias, self.epsilon, self.axis_name)
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y.astype(x.dtype)


# The batch statistics' forward and backward written out: autodiff of the masked two-pass
# statistics made about 14 small kernels per BatchNorm (a third of the WS3D step's 4,700), this
# makes one reduction and one elementwise pass each way. The math is autodiff's (tested against it).

@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def masked_batch_norm(x, m, scale, bias, epsilon: float, axis_name):
  """(normalised x on the rows where m is 1, zeros elsewhere; the batch mean; the batch variance).
  x (N, C) float32, m (N, 1) float32 0/1; statistics over every device of ``axis_name``."""
  return _bn_fwd(x, m, scale, bias, epsilon, axis_name)[0]


def _psum(v, axis_name):
  return jax.lax.psum(v, axis_name) if axis_name else v


def _bn_fwd(x, m, scale, bias, epsilon, axis_name):
  count = jnp.maximum(_psum(m.sum(), axis_name), 1.0)
  mean = _psum((x * m).sum(axis=0), axis_name) / count
  # Two passes, not E[x^2] - E[x]^2: float32 cancellation is real at these magnitudes.
  var = _psum((jnp.square(x - mean) * m).sum(axis=0), axis_name) / count
  rstd = jax.lax.rsqrt(var + epsilon)
  xhat = (x - mean) * rstd
  y = (xhat * scale + bias) * m
  return (y, mean, var), (xhat, m, rstd, scale, count)


def _bn_bwd(epsilon, axis_name, res, cotangents):
  del epsilon
  xhat, m, rstd, scale, count = res
  g = cotangents[0] * m  # the statistics' own outputs feed only the running averages: no gradient
  grad_bias = g.sum(axis=0)
  grad_scale = (g * xhat).sum(axis=0)
  # d loss / d xhat is g * scale; its mean and its correlation with xhat over the (global) batch
  # are what the statistics take back.
  mean_g = _psum(grad_bias, axis_name) * scale / count
  mean_gx = _psum(grad_scale, axis_name) * scale / count
  grad_x = (g * scale - m * (mean_g + xhat * mean_gx)) * rstd
  return grad_x, None, grad_scale, grad_bias


masked_batch_norm.defvjp(_bn_fwd, _bn_bwd)

"""The compute step of sparse convolution and pooling, as pure functions of arrays and maps.

Two dataflows for the submanifold 3x3x3 convolution (see docs/benchmarks.md for the numbers):

* ``submanifold_conv_pairs``: the centre offset is a plain matmul; every other offset's real
  pairs are gathered in chunks, multiplied in one batched matmul and summed into their outputs.
  Work is proportional to the pairs that exist. The backward is autodiff's (the gather and the
  scatter are each other's transposes) except for the weight gradient, summed per offset by a
  one-hot matmul instead of a scatter.
* ``submanifold_conv_dense``: gather all 27 neighbours (missing ones read a zero row) and do one
  matmul. Its backward is written by hand so it stays gather-only: the neighbourhood is
  symmetric, so the input gradient is the same gather with the mirrored map.

The strided 2x2x2 convolution and its transpose run the same dataflow over the down map's
(child, parent) pairs, grouped by the child's slot: only children that exist are computed (the
dense alternative, all 8 slots of every parent, computed 3.8x the useful FLOPs on the main job).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ws3d_jax.sparse.kernel_map import CENTER, DownMap, PairMap


def _with_zero_row(x):
  return jnp.concatenate([x, jnp.zeros((1,) + x.shape[1:], x.dtype)], axis=0)


# --- pairs in chunks: gather, one batched matmul, scatter-add -----------------------------------

def _pair_products(x, weight, pairs: PairMap):
  """Each chunk's input rows times its offset's weight: (gathered inputs, products)."""
  gathered = _with_zero_row(x)[pairs.in_idx]  # (chunks, chunk, Cin)
  return gathered, jnp.einsum('pkc,pco->pko', gathered, weight[pairs.offset])


def _scatter_add(base, idx, per_chunk):
  """``base`` plus the chunk rows summed into the rows ``idx`` names (out-of-range: dropped)."""
  return base.at[idx.reshape(-1)].add(per_chunk.reshape(-1, base.shape[-1]), mode='drop')


def _pair_grads(gathered, g, weight, pairs: PairMap):
  """The products' backward: (gradient of the gathered inputs, weight gradient per offset).

  Autodiff would turn the per-chunk weight gather into a scatter-add of (chunks, Cin, Cout)
  into the offsets' rows, one of the step's slowest ops on CPU; chunks are whole offsets, so a
  one-hot matmul over chunks sums them instead."""
  g_pairs = _with_zero_row(g)[pairs.out_idx]  # (chunks, chunk, Cout); dropped slots read zeros
  grad_chunks = jnp.einsum('pkc,pko->pco', gathered, g_pairs)
  owner = jax.nn.one_hot(pairs.offset, weight.shape[0], dtype=grad_chunks.dtype)  # (chunks, offsets)
  grad_w = jnp.einsum('pd,pco->dco', owner, grad_chunks)
  grad_gathered = jnp.einsum('pko,pco->pkc', g_pairs, weight[pairs.offset])
  return grad_gathered, grad_w


# --- submanifold 3x3x3 -------------------------------------------------------------------------

@jax.custom_vjp
def submanifold_conv_pairs(x, weight, pairs: PairMap):
  """x (N, Cin), weight (27, Cin, Cout) -> (N, Cout)."""
  return _pairs_fwd(x, weight, pairs)[0]


def _pairs_fwd(x, weight, pairs):
  gathered, per_chunk = _pair_products(x, weight, pairs)
  return _scatter_add(x @ weight[CENTER], pairs.out_idx, per_chunk), (x, weight, pairs, gathered)


def _pairs_bwd(res, g):
  x, weight, pairs, gathered = res
  grad_gathered, grad_w = _pair_grads(gathered, g, weight, pairs)
  grad_w = grad_w.at[CENTER].add(x.T @ g)
  return _scatter_add(g @ weight[CENTER].T, pairs.in_idx, grad_gathered), grad_w, None


submanifold_conv_pairs.defvjp(_pairs_fwd, _pairs_bwd)


@jax.custom_vjp
def submanifold_conv_dense(x, weight, nbr):
  """x (N, Cin), weight (27, Cin, Cout), nbr (N, 27) -> (N, Cout)."""
  return jnp.einsum('nkc,kco->no', _with_zero_row(x)[nbr], weight)


def _dense_fwd(x, weight, nbr):
  return submanifold_conv_dense(x, weight, nbr), (x, weight, nbr)


def _dense_bwd(res, g):
  x, weight, nbr = res
  # Mirror symmetry: j is i's neighbour at offset d iff i is j's neighbour at offset 26-d.
  grad_x = jnp.einsum('nko,kco->nc', _with_zero_row(g)[nbr[:, ::-1]], weight)
  grad_w = jnp.einsum('nkc,no->kco', _with_zero_row(x)[nbr], g)
  return grad_x, grad_w, None


submanifold_conv_dense.defvjp(_dense_fwd, _dense_bwd)


# --- strided 2x2x2 and its transpose ---------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _pair_conv(x, weight, pairs: PairMap, num_out: int):
  """Pairs only, no centre: x (N_in, Cin), weight (K, Cin, Cout) -> (num_out, Cout)."""
  return _pair_conv_fwd(x, weight, pairs, num_out)[0]


def _pair_conv_fwd(x, weight, pairs, num_out):
  gathered, per_chunk = _pair_products(x, weight, pairs)
  out = _scatter_add(jnp.zeros((num_out, weight.shape[-1]), per_chunk.dtype), pairs.out_idx, per_chunk)
  return out, (x, weight, pairs, gathered)


def _pair_conv_bwd(num_out, res, g):
  del num_out
  x, weight, pairs, gathered = res
  grad_gathered, grad_w = _pair_grads(gathered, g, weight, pairs)
  return _scatter_add(jnp.zeros_like(x), pairs.in_idx, grad_gathered), grad_w, None


_pair_conv.defvjp(_pair_conv_fwd, _pair_conv_bwd)


def strided_conv(x_fine, weight, down: DownMap):
  """x_fine (N_fine, Cin), weight (8, Cin, Cout) -> (N_coarse, Cout): each child's features times
  its slot's weight, summed into its parent. Only existing children are computed."""
  return _pair_conv(x_fine, weight, down.pairs, down.coarse)


def transposed_conv(x_coarse, weight, down: DownMap):
  """x_coarse (N_coarse, Cin), weight (8, Cin, Cout) -> (N_fine, Cout), reusing the down map:
  each child reads its parent times its slot's weight."""
  return _pair_conv(x_coarse, weight, down.pairs.reversed(), down.parent.shape[0])


# --- pooling into groups ------------------------------------------------------------------------

def segment_pool(x, segment_ids, num_segments: int, kind: str = 'max'):
  """Pools rows of x into groups; ids outside [0, num_segments) are ignored (padding).

  Returns (pooled (S, C), counts (S,)). Empty groups pool to zeros, never to -inf.
  """
  valid = (segment_ids >= 0) & (segment_ids < num_segments)
  ids = jnp.where(valid, segment_ids, num_segments)
  counts = jax.ops.segment_sum(valid.astype(jnp.int32), ids, num_segments + 1)[:num_segments]
  if kind == 'max':
    pooled = jax.ops.segment_max(x, ids, num_segments + 1)[:num_segments]
  elif kind == 'mean':
    summed = jax.ops.segment_sum(x, ids, num_segments + 1)[:num_segments]
    pooled = summed / jnp.maximum(counts, 1)[:, None].astype(x.dtype)
  else:
    raise ValueError(f"segment_pool kind must be 'max' or 'mean', got {kind!r}")
  return jnp.where(counts[:, None] > 0, pooled, 0).astype(x.dtype), counts

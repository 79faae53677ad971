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

The strided 2x2x2 convolution and its transpose are each other's adjoints. Each voxel has one
parent, so both directions can be written as gathers; their custom VJPs use that instead of
the scatter-add that autodiff of a gather would produce.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ws3d_jax.sparse.kernel_map import CENTER, DownMap, PairMap


def _with_zero_row(x):
  return jnp.concatenate([x, jnp.zeros((1,) + x.shape[1:], x.dtype)], axis=0)


# --- submanifold 3x3x3 -------------------------------------------------------------------------

@jax.custom_vjp
def submanifold_conv_pairs(x, weight, pairs: PairMap):
  """x (N, Cin), weight (27, Cin, Cout) -> (N, Cout)."""
  return _pairs_forward(x, weight, pairs)[0]


def _pairs_forward(x, weight, pairs):
  n = x.shape[0]
  out = x @ weight[CENTER]
  gathered = _with_zero_row(x)[pairs.in_idx]  # (chunks, chunk, Cin)
  per_chunk = jnp.einsum('pkc,pco->pko', gathered, weight[pairs.offset])
  flat_out = pairs.out_idx.reshape(-1)
  return out.at[flat_out].add(per_chunk.reshape(-1, out.shape[-1]), mode='drop')[:n], gathered


def _pairs_fwd(x, weight, pairs):
  out, gathered = _pairs_forward(x, weight, pairs)
  return out, (x, weight, pairs, gathered)


def _pairs_bwd(res, g):
  # Autodiff would turn the per-chunk weight gather into a scatter-add of (chunks, Cin, Cout)
  # into 27 rows, one of the step's slowest ops on CPU; chunks are whole offsets, so a one-hot
  # matmul over chunks sums them instead.
  x, weight, pairs, gathered = res
  n, cin = x.shape
  g_pairs = _with_zero_row(g)[pairs.out_idx]  # (chunks, chunk, Cout); dropped slots read zeros
  grad_chunks = jnp.einsum('pkc,pko->pco', gathered, g_pairs)
  owner = jax.nn.one_hot(pairs.offset, weight.shape[0], dtype=grad_chunks.dtype)  # (chunks, 27)
  grad_w = jnp.einsum('pd,pco->dco', owner, grad_chunks)
  grad_w = grad_w.at[CENTER].add(x.T @ g)
  grad_gathered = jnp.einsum('pko,pco->pkc', g_pairs, weight[pairs.offset])
  grad_x = (g @ weight[CENTER].T).at[pairs.in_idx.reshape(-1)].add(grad_gathered.reshape(-1, cin), mode='drop')
  return grad_x, grad_w, None


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

def _gather_children(x, down: DownMap):
  return _with_zero_row(x)[down.children]  # (N_coarse, 8, C)


def _gather_parent_slot(per_slot, down: DownMap):
  """per_slot (N_coarse, 8, C) -> (N_fine, C): each fine voxel reads its own parent and slot."""
  return _with_zero_row(per_slot)[down.parent, down.slot]


@jax.custom_vjp
def strided_conv(x_fine, weight, down: DownMap):
  """x_fine (N_fine, Cin), weight (8, Cin, Cout) -> (N_coarse, Cout)."""
  return jnp.einsum('psc,sco->po', _gather_children(x_fine, down), weight)


@jax.custom_vjp
def transposed_conv(x_coarse, weight, down: DownMap):
  """x_coarse (N_coarse, Cin), weight (8, Cin, Cout) -> (N_fine, Cout), reusing the down map."""
  return _gather_parent_slot(jnp.einsum('pc,sco->pso', x_coarse, weight), down)


def _strided_fwd(x_fine, weight, down):
  return strided_conv(x_fine, weight, down), (x_fine, weight, down)


def _strided_bwd(res, g):
  x_fine, weight, down = res
  grad_x = _gather_parent_slot(jnp.einsum('po,sco->psc', g, weight), down)
  grad_w = jnp.einsum('psc,po->sco', _gather_children(x_fine, down), g)
  return grad_x, grad_w, None


def _transposed_fwd(x_coarse, weight, down):
  return transposed_conv(x_coarse, weight, down), (x_coarse, weight, down)


def _transposed_bwd(res, g):
  x_coarse, weight, down = res
  g_children = _gather_children(g, down)  # (N_coarse, 8, Cout)
  grad_x = jnp.einsum('pso,sco->pc', g_children, weight)
  grad_w = jnp.einsum('pc,pso->sco', x_coarse, g_children)
  return grad_x, grad_w, None


strided_conv.defvjp(_strided_fwd, _strided_bwd)
transposed_conv.defvjp(_transposed_fwd, _transposed_bwd)


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

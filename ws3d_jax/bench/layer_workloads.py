"""The single-layer workloads of the sparse-convolution benchmark, each a function of the settings and a
prepared scan that returns its result dict:

* ``submanifold``: one submanifold 3x3x3 layer (Cin = Cout = C) at one level, either dataflow;
* ``updown``: the 2x2x2 stride-2 convolution or its transpose;
* ``profile_pairs``: the 'pairs' layer split into its steps, with a chunk-length sweep.

Useful FLOPs count real work only: 2 * (real voxels + real side pairs) * Cin * Cout for a submanifold
layer, 2 * (fine voxels) * Cin * Cout for the strided and transposed layers, a backward pass twice its
forward; ``executed_gflop`` is what the dataflow actually multiplies, padding included.
"""
from __future__ import annotations

import math

import numpy as np

from ws3d_jax.bench.harness import counted_jit, sig, time_jax, xla_temp_mb
from ws3d_jax.bench.prepared import Prepared, geometry_args, geometry_builder
from ws3d_jax.bench.settings import Config


def submanifold(cfg: Config, prep: Prepared, c: int, impl: str, level: int = 0, geometry=None):
  """(result, timed, nbr) of one submanifold layer: timed = {'forward' | 'forward_backward': (jitted fn,
  args)} for interleaved rounds with a peer, nbr the level's neighbour table for the peer to run on.
  Without a geometry, level 0's maps are built (and timed) here."""
  import jax.numpy as jnp

  from ws3d_jax.sparse import ops
  traces = {}
  res = {'workload': 'submanifold 3x3x3', 'dataflow': impl, 'level': level, 'stride': 2 ** level,
         'scene': prep.scene.name, 'source': prep.scene.source, 'voxel_size_m': prep.scene.voxel_size,
         'channels': {'in': c, 'out': c}}
  if geometry is None:
    chunk = cfg.chunk if impl == 'pairs' else None
    build = geometry_builder(prep.caps, (chunk,), 1, traces, 'geometry')
    args = geometry_args(prep)
    res['kernel_map_build'] = time_jax(build, args, cfg.warmup, cfg.build_reps)
    res['kernel_map_build']['what'] = ('level-0 neighbour search' + (' + pair map' if chunk else ''))
    geom = build(*args)
  else:
    geom = geometry
    chunk = geom.pairs[level].in_idx.shape[1] if geom.pairs[level] is not None else None
  lv = geom.levels[level]
  n_cap = lv.coords.shape[0]
  real = int(prep.counts.voxels[level])
  side = int(prep.counts.pairs[level])
  res.update({'voxels': real, 'capacity_voxels': n_cap, 'side_pairs': side,
              'neighbours_per_voxel': round((real + side) / real, 2)})
  rng = np.random.default_rng(1)
  x = _masked_normal(rng, lv.valid, c)
  w = jnp.asarray(rng.standard_normal((27, c, c)), jnp.float32) * math.sqrt(2.0 / (27 * c))
  probe = _masked_normal(rng, lv.valid, c)
  if impl == 'pairs':
    pm = geom.pairs[level]
    op, conv_map = ops.submanifold_conv_pairs, pm
    res['pair_chunks'] = {'chunks': int(pm.in_idx.shape[0]), 'chunk': chunk,
                          'capacity_side_pairs': int(prep.caps.pairs[level])}
    executed_rows = n_cap + pm.in_idx.size
  else:
    op, conv_map = ops.submanifold_conv_dense, lv.nbr
    executed_rows = 27 * n_cap
  timed = _time_layer(cfg, res, traces, op, (x, w, conv_map), probe)
  _flops(res, 2.0 * (real + side) * c * c, 2.0 * executed_rows * c * c)
  res['compile_count'] = dict(traces)
  return res, timed, lv.nbr


def updown(cfg: Config, prep: Prepared, c: int, kind: str) -> dict:
  """The stride-2 2x2x2 convolution (kind 'strided') or its transpose ('transposed'), levels 0 <-> 1."""
  import jax.numpy as jnp

  from ws3d_jax.sparse import ops
  traces = {}
  build = geometry_builder(prep.caps, (None, None), 2, traces, 'geometry')
  args = geometry_args(prep)
  res = {'workload': f'{kind} 2x2x2 (stride 2)', 'scene': prep.scene.name, 'source': prep.scene.source,
         'voxel_size_m': prep.scene.voxel_size, 'channels': {'in': c, 'out': c}}
  res['kernel_map_build'] = time_jax(build, args, cfg.warmup, cfg.build_reps)
  res['kernel_map_build']['what'] = 'two levels: neighbour searches of both + the down map'
  geom = build(*args)
  fine, coarse, down = geom.levels[0], geom.levels[1], geom.down[0]
  lin, lout = (fine, coarse) if kind == 'strided' else (coarse, fine)
  op = ops.strided_conv if kind == 'strided' else ops.transposed_conv
  rng = np.random.default_rng(2)
  x = _masked_normal(rng, lin.valid, c)
  w = jnp.asarray(rng.standard_normal((8, c, c)), jnp.float32) * math.sqrt(1.0 / (8 * c))
  probe = _masked_normal(rng, lout.valid, c)
  _time_layer(cfg, res, traces, op, (x, w, down), probe)
  n_fine, n_coarse = int(prep.counts.voxels[0]), int(prep.counts.voxels[1])
  res.update({'voxels': n_fine, 'coarse_voxels': n_coarse, 'capacity_voxels': fine.coords.shape[0],
              'capacity_coarse_voxels': coarse.coords.shape[0]})
  _flops(res, 2.0 * n_fine * c * c, 2.0 * down.pairs.in_idx.size * c * c)
  res['compile_count'] = dict(traces)
  return res


def _masked_normal(rng, valid, c: int):
  """(rows, c) standard normal features, zero on padding rows."""
  import jax.numpy as jnp
  return jnp.asarray(rng.standard_normal((valid.shape[0], c)), jnp.float32) * valid[:, None]


def _time_layer(cfg: Config, res: dict, traces: dict, op, args: tuple, probe) -> dict:
  """Times op(x, w, map) forward and, as value_and_grad of sum(out * probe) w.r.t. x and w, forward +
  backward, into res; returns both jitted functions with their arguments."""
  import jax
  import jax.numpy as jnp
  fwd = counted_jit(lambda x, w, m: op(x, w, m), traces, 'forward')
  fwd_bwd = counted_jit(jax.value_and_grad(lambda x, w, m, p: jnp.sum(op(x, w, m) * p), argnums=(0, 1)),
                        traces, 'forward_backward')
  timed = {'forward': (fwd, args), 'forward_backward': (fwd_bwd, args + (probe,))}
  for kind, (fn, fn_args) in timed.items():
    res[kind] = time_jax(fn, fn_args, cfg.warmup, cfg.reps)
  if cfg.xla_memory:
    res['xla_temp_mb'] = {kind: xla_temp_mb(fn, fn_args) for kind, (fn, fn_args) in timed.items()}
  return timed


def _flops(res: dict, useful: float, executed: float):
  """Useful and executed GFLOP of the forward, and the useful rates of the timed passes, into res."""
  res['useful_gflop'] = {'forward': sig(useful / 1e9), 'forward_backward': sig(3 * useful / 1e9)}
  res['executed_gflop'] = {'forward': sig(executed / 1e9)}
  res['useful_gflops_per_s'] = {
      'forward': sig(useful / 1e9 / (res['forward']['median_ms'] / 1e3)),
      'forward_backward': sig(3 * useful / 1e9 / (res['forward_backward']['median_ms'] / 1e3))}


# --- where the 'pairs' time goes ------------------------------------------------------------------

def profile_pairs(cfg: Config, prep: Prepared, c: int) -> dict:
  """The pairs layer split into its steps, each a separate jitted function on the real maps, plus
  a chunk-length sweep and a prototype that loops over chunks (no pairs x C temporaries)."""
  import jax
  import jax.numpy as jnp

  from ws3d_jax.sparse import kernel_map, ops
  traces = {}
  geom = geometry_builder(prep.caps, (None,), 1, traces, 'geometry')(*geometry_args(prep))
  nbr = geom.levels[0].nbr
  n = nbr.shape[0]
  rng = np.random.default_rng(4)
  x = _masked_normal(rng, geom.levels[0].valid, c)
  w = jnp.asarray(rng.standard_normal((27, c, c)), jnp.float32) * math.sqrt(2.0 / (27 * c))
  g = _masked_normal(rng, geom.levels[0].valid, c)
  t = lambda f, *a: time_jax(jax.jit(f), a, cfg.warmup, cfg.reps)['median_ms']
  zrow = lambda v: jnp.concatenate([v, jnp.zeros((1, v.shape[1]), v.dtype)])
  build = jax.jit(kernel_map.build_pairs, static_argnums=(1, 2))
  res = {'workload': f'profile of the pairs submanifold layer, C={c}', 'scene': prep.scene.name,
         'note': 'each step timed alone (its own jit, fresh output buffer); sums exceed the fused total'}
  chunk = cfg.chunk
  pm, _ = build(nbr, prep.caps.pairs[0], chunk)
  gathered = zrow(x)[pm.in_idx]
  wsel = w[pm.offset]
  prod = jnp.einsum('pkc,pco->pko', gathered, wsel)
  g_out = zrow(g)[pm.out_idx]
  steps = {
      'centre_matmul': t(lambda x, w: x @ w[13], x, w),
      'gather_x': t(lambda x, i: zrow(x)[i], x, pm.in_idx),
      'weight_per_chunk': t(lambda w, o: w[o], w, pm.offset),
      'einsum': t(lambda a, b: jnp.einsum('pkc,pco->pko', a, b), gathered, wsel),
      'scatter_add_out': t(lambda p, o: jnp.zeros((n, c), jnp.float32).at[o.reshape(-1)].add(
          p.reshape(-1, c), mode='drop'), prod, pm.out_idx),
      'bwd_gather_g': t(lambda g, o: zrow(g)[o], g, pm.out_idx),
      'bwd_einsum_dx': t(lambda a, b: jnp.einsum('pko,pco->pkc', a, b), g_out, wsel),
      'bwd_scatter_add_dx': t(lambda p, i: jnp.zeros((n, c), jnp.float32).at[i.reshape(-1)].add(
          p.reshape(-1, c), mode='drop'), g_out, pm.in_idx),
      'bwd_einsum_dw': t(lambda a, b: jnp.einsum('pkc,pko->pco', a, b), gathered, g_out),
      'bwd_segment_sum_dw': t(lambda d, o: jax.ops.segment_sum(d, o, 27),
                              jnp.einsum('pkc,pko->pco', gathered, g_out), pm.offset),
      'reference_fresh_buffer_write': t(lambda a: a * 2.0, gathered),
      'reference_sum_no_big_output': t(lambda a: jnp.sum(a * 2.0, axis=(0, 1)), gathered),
  }
  res['chunk'] = chunk
  res['slots'] = int(pm.in_idx.size)
  res['steps_ms'] = steps
  del gathered, wsel, prod, g_out

  fwd = lambda x, w, pm: ops.submanifold_conv_pairs(x, w, pm)
  fb = jax.grad(lambda x, w, pm, g: jnp.sum(ops.submanifold_conv_pairs(x, w, pm) * g), argnums=(0, 1))
  sweep = {}
  for ch in (64, 256, 1024):
    pm, _ = build(nbr, prep.caps.pairs[0], ch)
    sweep[str(ch)] = {'chunks': int(pm.in_idx.shape[0]), 'forward_ms': t(fwd, x, w, pm),
                      'forward_backward_ms': t(fb, x, w, pm, g),
                      'scan_prototype_forward_ms': t(_conv_pairs_scan, x, w, pm)}
  res['chunk_sweep'] = sweep
  res['scan_prototype'] = ('lax.scan over chunks: gather chunk rows, matmul with w[offset], scatter-add '
                           'into the carried output (forward only, exact same result)')
  res['compile_count'] = dict(traces)
  return res


def _conv_pairs_scan(x, w, pm):
  """Prototype for profile_pairs: the pairs forward as a loop over chunks, so no (pairs x C)
  buffer is ever materialised; padding pairs write into an extra row that is dropped."""
  import jax.numpy as jnp
  from jax import lax
  n = x.shape[0]
  xp = jnp.concatenate([x, jnp.zeros((1, x.shape[1]), x.dtype)])
  out = jnp.concatenate([x @ w[13], jnp.zeros((1, w.shape[2]), x.dtype)])

  def body(out, chunk):
    i, o, d = chunk
    return out.at[o].add(xp[i] @ w[d], mode='promise_in_bounds'), None

  out, _ = lax.scan(body, out, (pm.in_idx, pm.out_idx, pm.offset))
  return out[:n]

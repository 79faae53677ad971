"""Sparse-convolution benchmark: single layers, dataflows per stride, MinkUNet, and a PyTorch peer.

    PYTHONPATH=. python -m ws3d_jax.bench.sparse_conv --out report.json [--quick] [--device-info]

Workloads (each skipped with a message when its data file is absent):

* ``subm_c{C}_{pairs|dense}``: one submanifold 3x3x3 layer (Cin = Cout = C) on the real
  SemanticKITTI scan 00/000000 at 5 cm, for both dataflows, with a PyTorch eager peer on the SAME
  neighbour map (per offset index_select -> mm -> index_add_) and spconv when importable.
* ``strided_c{C}`` / ``transposed_c{C}``: the 2x2x2 stride-2 convolution and its transpose.
* ``subm_level{l}_{pairs|dense}_{scan}``: one submanifold layer at each stride of the network's
  pyramid (neighbour density grows with stride), at the channel width MinkUNet34 uses there.
* ``{minkunet34|minkunet14}_{scan}``: forward (eval mode) and one training step (cross-entropy on
  random labels, grad, optax Adam update) on the SemanticKITTI scan and a ScanNet scene.

Every timing is of a ``jax.jit``-compiled function, ``block_until_ready``, first call(s) excluded
(their time is reported separately as ``first_call_ms``, which includes compilation). The
forward+backward of a layer is ``value_and_grad`` of ``sum(out * probe)`` with respect to the
input features and the weights. Useful FLOPs count real work only: 2 * (real voxels + real side
pairs) * Cin * Cout for a submanifold layer, 2 * (fine voxels) * Cin * Cout for the strided and
transposed layers, summed over the layers of a network (1x1 layers included); a backward pass is
counted as twice its forward. ``executed_gflop`` is what the dataflow actually multiplies,
padding included.

Errors are against ``lax.conv_general_dilated`` on a densified grid. The full scan's grid is far
too large (3122 x 2013 x 289 voxels), so the check runs on a crop of the same scan (the densest
aligned block of ``crop`` voxels), with the workload's channel count; the JSON says so per
workload (``error.scope``).

Peak memory: on CPU the process's peak resident set, reset before each workload through
/proc/self/clear_refs where the kernel allows it (``peak_rss_scope`` says which); on a GPU the
device's ``peak_bytes_in_use``. ``xla_temp_mb`` is XLA's own figure for the compiled function's
scratch memory.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ws3d_jax.bench.harness import (Memory, counted_jit, device_info, load_average, sig, time_calls, time_jax,
                                    xla_temp_mb)
from ws3d_jax.bench.torch_peer import make_layer_peer, spconv_status

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = (REPO / '..' / 'shared' / 'data').resolve()
KITTI_REL = 'semantickitti/sequences/00/velodyne/000000.bin'
SCANNET_REL = 'scannet/scannet_instance_data/scene0000_00_vert.npy'
DN = ('NDHWC', 'DHWIO', 'NDHWC')


GROUPS = ('layers', 'updown', 'profile', 'network', 'by_level')

# --- configuration --------------------------------------------------------------------------------

@dataclasses.dataclass
class Config:
  channels: tuple = (32, 64, 128, 256)
  dataflows: tuple = ('pairs', 'dense')
  dense_max_channels: int = 1 << 30  # the 'dense' dataflow only up to this width (--quick: 32)
  strided_channels: int = 64
  warmup: int = 2
  reps: int = 10
  net_reps: int = 5
  build_reps: int = 5
  peer_reps: int = 7
  paired_rounds: int = 7  # interleaved ours/peer calls for the headline ratio (0: separate runs only)
  paired_pause_s: float = 0.1  # idle time before each interleaved call (untimed)
  paired_max_ms: float = 5000.0  # dataflows slower than this per fwd+bwd are not interleaved
  crop: tuple = (64, 64, 32)
  big_crop_channels: int = 256  # from this width on the error check uses small_crop
  small_crop: tuple = (32, 32, 32)
  network: str = 'minkunet34'
  network_dtype: str = 'float32'  # compute dtype of the network workloads ('bfloat16': bf16 matmuls, f32 params)
  train_step: bool = True
  network_peer: bool = True  # the same network in PyTorch eager, interleaved with ours
  by_level: bool = True
  scannet_network: bool = True
  check_grads: bool = True
  profile: bool = True  # step-by-step profile of the pairs layer per width
  xla_memory: bool = True  # XLA's memory analysis of each compiled layer (compiles it once more)
  layer_growth: float = 1.05  # capacity ladder for the single-layer workloads (tight padding)
  synthetic: bool = False
  only: tuple = GROUPS  # which workload groups run
  synthetic_size: tuple = (64, 2048)  # LiDAR beams x azimuth steps for --synthetic

  @classmethod
  def quick(cls, **kw):
    base = dict(channels=(32, 64), dense_max_channels=32, strided_channels=32, xla_memory=False, profile=False,
                warmup=1, reps=3, net_reps=2, build_reps=2, peer_reps=3, paired_rounds=3, crop=(32, 32, 16),
                small_crop=(32, 32, 16),
                network='minkunet14', train_step=False, by_level=False, scannet_network=False, check_grads=False)
    base.update(kw)
    return cls(**base)


def chunk_for(channels: int) -> int:
  """The pair-map chunk length MinkUNet's spec uses for a level of this width."""
  return max(64, min(256, channels))


# --- scenes ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class Scene:
  name: str
  xyz: np.ndarray
  feats: np.ndarray
  voxel_size: float
  num_classes: int
  source: str


def load_kitti(path: Path) -> Scene:
  pts = np.fromfile(path, dtype='<f4').reshape(-1, 4)
  return Scene('semantickitti_00_000000', pts[:, :3].copy(), pts.copy(), 0.05, 19, str(path))


def load_scannet(path: Path) -> Scene:
  vert = np.load(path).astype(np.float32)
  return Scene('scannet_scene0000_00', vert[:, :3].copy(), vert[:, 3:6] / 255.0, 0.02, 20, str(path))


def synthetic_scenes(cfg: Config) -> tuple[Scene, Scene]:
  from ws3d_jax.data import synthetic, synthetic_lidar
  beams, azimuth = cfg.synthetic_size
  sweep = synthetic_lidar.make_sweep(0, num_beams=beams, num_azimuth=azimuth)
  feats = np.concatenate([sweep['xyz'], sweep['features']], axis=1)
  lidar = Scene('synthetic_lidar_sweep', sweep['xyz'], feats, 0.05, 19, 'synthetic_lidar.make_sweep(0)')
  room = synthetic.make_room(0, num_points=beams * azimuth // 2)
  indoor = Scene('synthetic_room', room['xyz'], room['features'][:, :3], 0.02, 20, 'synthetic.make_room(0)')
  return lidar, indoor


@dataclasses.dataclass
class Prepared:
  scene: Scene
  arrays: dict  # jnp arrays of the padded batch
  caps: object
  counts: object  # StructureCounts (real voxels and side pairs per level)
  voxel_coords: np.ndarray  # (V, 3) real voxel coords of level 0
  host_ms: float

  @property
  def voxels(self):
    return self.counts.voxels[0]


def prepare(scene: Scene, num_levels: int, headroom: float, growth: float) -> Prepared:
  import jax.numpy as jnp
  from ws3d_jax import sparse
  t0 = time.perf_counter()
  vox = sparse.voxelize_scene(scene.xyz, scene.feats, scene.voxel_size, scene.name)
  coords = np.concatenate([np.zeros((len(vox.coords), 1), np.int32), vox.coords], 1)
  counts = sparse.count_structure(coords, len(scene.xyz), num_levels)
  profile = sparse.BucketProfile.from_counts(counts, headroom=headroom, growth=growth)
  batch, caps = sparse.prepare_batch([(scene.xyz, scene.feats)], scene.voxel_size, profile, num_levels,
                                     names=[scene.name])
  host_ms = (time.perf_counter() - t0) * 1e3
  arrays = {k: jnp.asarray(getattr(batch, k)) for k in ('coords', 'features', 'voxel_valid', 'point2voxel',
                                                        'point_valid')}
  return Prepared(scene, arrays, caps, counts, vox.coords, host_ms)


def geometry_builder(caps, chunk_sizes, num_levels: int, counts: dict, key: str):
  """Jitted geometry build over the first num_levels levels of caps."""
  from ws3d_jax import sparse
  vcap, pcap = tuple(caps.voxels[:num_levels]), tuple(caps.pairs[:num_levels])

  def build(coords, voxel_valid, point2voxel, point_valid):
    return sparse.build_geometry(coords, voxel_valid, point2voxel, point_valid, vcap, pcap, tuple(chunk_sizes))

  return counted_jit(build, counts, key)


def geometry_args(prep: Prepared):
  a = prep.arrays
  return (a['coords'], a['voxel_valid'], a['point2voxel'], a['point_valid'])


# --- dense reference on a crop --------------------------------------------------------------------

def densest_block(coords: np.ndarray, block: tuple) -> np.ndarray:
  """Real voxels inside the aligned block of this shape that holds the most of them."""
  b = np.asarray(block)
  cell = coords // b
  uniq, inv, cnt = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
  best = np.argmax(cnt)
  return coords[inv.ravel() == best]


def crop_error(prep: Prepared, channels: int, kinds, crop: tuple, check_grads: bool, seed: int = 0) -> dict:
  """Max abs errors of each kind ('pairs', 'dense', 'strided', 'transposed') against
  lax.conv_general_dilated on the densified crop, forward (and gradients if check_grads)."""
  import jax
  import jax.numpy as jnp
  from jax import lax

  from ws3d_jax import sparse
  from ws3d_jax.sparse import ops

  block = densest_block(prep.voxel_coords, crop)
  xyz = (block - block.min(axis=0) + 0.5).astype(np.float32)
  coords = np.concatenate([np.zeros((len(block), 1), np.int32), (xyz - 0.5).astype(np.int32)], 1)
  counts = sparse.count_structure(coords, len(xyz), 2)
  profile = sparse.BucketProfile.from_counts(counts, headroom=1.0, min_voxels=64, align=8)
  batch, caps = sparse.prepare_batch([(xyz, np.zeros((len(xyz), 1), np.float32))], 1.0, profile, 2)
  geom = jax.jit(sparse.build_geometry, static_argnums=(4, 5, 6))(
      jnp.asarray(batch.coords), jnp.asarray(batch.voxel_valid), jnp.asarray(batch.point2voxel),
      jnp.asarray(batch.point_valid), caps.voxels, caps.pairs, (chunk_for(channels), None))
  fine, coarse = geom.levels[0], geom.levels[1]
  rng = np.random.default_rng(seed)
  scale = math.sqrt(2.0 / (27 * channels))
  shape = {0: (1,) + tuple(crop), 1: (1,) + tuple(c // 2 for c in crop)}

  def rand(level, c):
    return jnp.asarray(rng.standard_normal((level.coords.shape[0], c)), jnp.float32) * level.valid[:, None]

  def densify(level, x, lvl):
    grid = jnp.zeros(shape[lvl] + (x.shape[-1],), x.dtype)
    return grid.at[tuple(level.coords.T)].add(x * level.valid[:, None])

  def sample(grid, level):
    c = level.coords
    return jnp.where(level.valid[:, None], grid[c[:, 0], c[:, 1], c[:, 2], c[:, 3]], 0)

  def conv(grid, kernel, **kw):
    return lax.conv_general_dilated(grid, kernel, dimension_numbers=DN, precision=lax.Precision.HIGHEST, **kw)

  result = {'scope': f'crop of the same scan: densest aligned {"x".join(map(str, crop))}-voxel block',
            'crop_voxels': int(len(block)), 'crop_side_pairs': int(counts.pairs[0]), 'channels': channels,
            'reference': 'lax.conv_general_dilated (precision HIGHEST) on the densified crop'}
  # Every function takes the geometry as an argument: closed-over arrays would be folded as constants.
  for kind in kinds:
    if kind in ('pairs', 'dense'):
      lin, lout, out_level, wshape = fine, fine, 0, (27, channels, channels)
      sparse_fn = ((lambda x, w, gm: ops.submanifold_conv_pairs(x, w, gm.pairs[0])) if kind == 'pairs'
                   else (lambda x, w, gm: ops.submanifold_conv_dense(x, w, gm.levels[0].nbr)))
      dense_fn = lambda x, w, gm: sample(conv(densify(gm.levels[0], x, 0), w.reshape(3, 3, 3, channels, channels),
                                              window_strides=(1, 1, 1), padding='SAME'), gm.levels[0])
    elif kind == 'strided':
      lin, lout, out_level, wshape = fine, coarse, 1, (8, channels, channels)
      sparse_fn = lambda x, w, gm: ops.strided_conv(x, w, gm.down[0])
      dense_fn = lambda x, w, gm: sample(conv(densify(gm.levels[0], x, 0), w.reshape(2, 2, 2, channels, channels),
                                              window_strides=(2, 2, 2), padding='VALID'), gm.levels[1])
    elif kind == 'transposed':
      lin, lout, out_level, wshape = coarse, fine, 0, (8, channels, channels)
      sparse_fn = lambda x, w, gm: ops.transposed_conv(x, w, gm.down[0])
      dense_fn = lambda x, w, gm: sample(conv(densify(gm.levels[1], x, 1),
                                              w.reshape(2, 2, 2, channels, channels)[::-1, ::-1, ::-1],
                                              window_strides=(1, 1, 1), padding=((1, 1),) * 3,
                                              lhs_dilation=(2, 2, 2)), gm.levels[0])
    else:
      raise ValueError(kind)
    x = rand(lin, channels)
    w = jnp.asarray(rng.standard_normal(wshape), jnp.float32) * scale
    probe = rand(lout, channels)
    def loss(f, lvl=out_level):
      def fn(x, w, gm, probe):
        out = f(x, w, gm)
        return jnp.sum(out * gm.levels[lvl].valid[:, None] * probe), out
      return fn

    if check_grads:
      (_, out_s), g_s = jax.jit(jax.value_and_grad(loss(sparse_fn), argnums=(0, 1), has_aux=True))(x, w, geom, probe)
      (_, out_d), g_d = jax.jit(jax.value_and_grad(loss(dense_fn), argnums=(0, 1), has_aux=True))(x, w, geom, probe)
    else:
      out_s, out_d = jax.jit(sparse_fn)(x, w, geom), jax.jit(dense_fn)(x, w, geom)
    vout, vin = np.asarray(lout.valid), np.asarray(lin.valid)
    entry = {'max_abs_err_fwd': float(np.abs(np.asarray(out_s) - np.asarray(out_d))[vout].max()),
             'ref_max_abs_fwd': float(np.abs(np.asarray(out_d))[vout].max())}
    if check_grads:
      entry['max_abs_err_grad_x'] = float(np.abs(np.asarray(g_s[0]) - np.asarray(g_d[0]))[vin].max())
      entry['max_abs_err_grad_w'] = float(np.abs(np.asarray(g_s[1]) - np.asarray(g_d[1])).max())
      entry['ref_max_abs_grad_w'] = float(np.abs(np.asarray(g_d[1])).max())
    result[kind] = entry
  return result


# --- PyTorch / spconv peer ------------------------------------------------------------------------

# --- workloads ------------------------------------------------------------------------------------

class Bench:

  def __init__(self, cfg: Config, log=print):
    self.cfg = cfg
    self.log = log
    self.results = []
    self.memory = Memory()
    self._callables = {}  # name -> ((forward, args), (forward_backward, args)) for interleaved peer rounds

  def _run(self, name, fn, *a, **kw):
    self.log(f'[bench] {name} ...')
    self.memory.start()
    load0 = load_average()
    t0 = time.perf_counter()
    try:
      res = fn(*a, **kw)
    except Exception as e:  # noqa: BLE001 - one failed workload must not lose the others
      traceback.print_exc()
      res = {'name': name, 'status': 'error', 'message': f'{type(e).__name__}: {e}'}
    res.setdefault('name', name)
    res.setdefault('status', 'ok')
    res.update(self.memory.read())
    res['load_average_before'] = load0
    res['load_average_after'] = load_average()
    res['wall_s'] = round(time.perf_counter() - t0, 1)
    self.results.append(res)
    fwd = res.get('forward', {}).get('median_ms')
    fb = res.get('forward_backward', res.get('train_step', {})).get('median_ms')
    self.log(f'[bench] {name}: {res["status"]} fwd {fwd} ms, fwd+bwd/step {fb} ms ({res["wall_s"]} s)')
    return res

  def skip(self, name, message):
    self.log(f'[bench] {name}: skipped: {message}')
    self.results.append({'name': name, 'status': 'skipped', 'message': message})

  # one submanifold layer ------------------------------------------------------------------------

  def layer_workloads(self, prep: Prepared):
    cfg = self.cfg
    peer_status = spconv_status()
    for c in cfg.channels:
      errors = None
      if cfg.crop:
        crop = cfg.small_crop if c >= cfg.big_crop_channels else cfg.crop
        t0 = time.perf_counter()
        try:
          errors = crop_error(prep, c, [f for f in cfg.dataflows if f != 'dense' or c <= cfg.dense_max_channels],
                              crop, cfg.check_grads)
        except Exception as e:  # noqa: BLE001
          traceback.print_exc()
          errors = {'status': 'error', 'message': f'{type(e).__name__}: {e}'}
        self.log(f'[bench] error check at {c} channels: {time.perf_counter() - t0:.1f} s')
      peer = {}
      flows = [f for f in cfg.dataflows if f != 'dense' or c <= cfg.dense_max_channels]
      for impl in flows:
        res = self._run(f'subm_c{c}_{impl}', self.submanifold, prep, c, impl, 0, errors, peer)
        res['spconv'] = peer_status
      pf = peer.get('result')
      runs = {impl: next(r for r in self.results if r['name'] == f'subm_c{c}_{impl}') for impl in flows}
      for impl, res in runs.items():
        if res['status'] == 'ok' and pf and 'forward' in pf:
          res['ratio_separate_runs'] = {
              'forward': round(res['forward']['median_ms'] / pf['forward']['median_ms'], 3),
              'forward_backward': round(res['forward_backward']['median_ms'] / pf['forward_backward']['median_ms'], 3)}
      if pf and 'forward' in pf and cfg.paired_rounds:
        self.log(f'[bench] interleaved ours/peer rounds at {c} channels ...')
        self.interleaved_ratios(runs, peer)
      self._callables.clear()
      peer.clear()

  def interleaved_ratios(self, runs: dict, peer: dict):
    """Ours and the peer alternately, call by call, so both see the same machine load; the ratio is
    the ratio of the medians of these paired rounds (the headline ratio_ours_over_peer)."""
    import jax
    p_fwd, p_fb = peer['functions']
    contenders = {impl: self._callables[res['name']] for impl, res in runs.items()
                  if res['status'] == 'ok' and res['name'] in self._callables
                  and res['forward_backward']['median_ms'] < self.cfg.paired_max_ms}
    times = {k: {'forward': [], 'forward_backward': []} for k in list(contenders) + ['peer']}
    for _ in range(self.cfg.paired_rounds):
      for kind, idx in (('forward', 0), ('forward_backward', 1)):
        for impl, fns in contenders.items():
          fn, args = fns[idx]
          time.sleep(self.cfg.paired_pause_s)  # lets the other runtime's spinning worker threads go idle
          t0 = time.perf_counter()
          jax.block_until_ready(fn(*args))
          times[impl][kind].append(time.perf_counter() - t0)
        time.sleep(self.cfg.paired_pause_s)
        t0 = time.perf_counter()
        (p_fwd if idx == 0 else p_fb)()
        times['peer'][kind].append(time.perf_counter() - t0)
    peer_med = {k: float(np.median(v)) for k, v in times['peer'].items()}
    for impl in contenders:
      res = runs[impl]
      med = {k: float(np.median(v)) for k, v in times[impl].items()}
      res['interleaved'] = {'rounds': self.cfg.paired_rounds, 'pause_s': self.cfg.paired_pause_s,
                            'ours_median_ms': {k: round(v * 1e3, 3) for k, v in med.items()},
                            'peer_median_ms': {k: round(v * 1e3, 3) for k, v in peer_med.items()}}
      res['ratio_ours_over_peer'] = {k: round(med[k] / peer_med[k], 3) for k in med}
    for impl, res in runs.items():
      if impl not in contenders and 'ratio_separate_runs' in res:
        res['ratio_ours_over_peer'] = dict(res['ratio_separate_runs'], note='separate runs (too slow to interleave)')

  def submanifold(self, prep: Prepared, c: int, impl: str, level: int, errors, peer: dict | None,
                  geometry=None, build_key=None):
    import jax
    import jax.numpy as jnp

    from ws3d_jax.sparse import ops
    cfg = self.cfg
    traces = {}
    res = {'workload': 'submanifold 3x3x3', 'dataflow': impl, 'level': level, 'stride': 2 ** level,
           'scene': prep.scene.name, 'source': prep.scene.source, 'voxel_size_m': prep.scene.voxel_size,
           'channels': {'in': c, 'out': c}}
    if geometry is None:
      chunk = chunk_for(c) if impl == 'pairs' else None
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
    x = jnp.asarray(rng.standard_normal((n_cap, c)), jnp.float32) * lv.valid[:, None]
    w = jnp.asarray(rng.standard_normal((27, c, c)), jnp.float32) * math.sqrt(2.0 / (27 * c))
    probe = jnp.asarray(rng.standard_normal((n_cap, c)), jnp.float32) * lv.valid[:, None]
    if impl == 'pairs':
      pm = geom.pairs[level]
      op_args = (pm,)
      op = ops.submanifold_conv_pairs
      res['pair_chunks'] = {'chunks': int(pm.in_idx.shape[0]), 'chunk': chunk,
                            'capacity_side_pairs': int(prep.caps.pairs[level])}
      executed_rows = n_cap + pm.in_idx.size
    else:
      op_args = (lv.nbr,)
      op = ops.submanifold_conv_dense
      executed_rows = 27 * n_cap

    fwd = counted_jit(lambda x, w, m: op(x, w, m), traces, 'forward')

    def loss(x, w, m, probe):
      return jnp.sum(op(x, w, m) * probe)

    fwd_bwd = counted_jit(jax.value_and_grad(loss, argnums=(0, 1)), traces, 'forward_backward')
    res['forward'] = time_jax(fwd, (x, w) + op_args, cfg.warmup, cfg.reps)
    res['forward_backward'] = time_jax(fwd_bwd, (x, w) + op_args + (probe,), cfg.warmup, cfg.reps)
    if cfg.xla_memory:
      res['xla_temp_mb'] = {'forward': xla_temp_mb(fwd, (x, w) + op_args),
                            'forward_backward': xla_temp_mb(fwd_bwd, (x, w) + op_args + (probe,))}
    flops = 2.0 * (real + side) * c * c
    res['useful_gflop'] = {'forward': sig(flops / 1e9), 'forward_backward': sig(3 * flops / 1e9)}
    res['executed_gflop'] = {'forward': sig(2.0 * executed_rows * c * c / 1e9)}
    res['useful_gflops_per_s'] = {
        'forward': sig(flops / 1e9 / (res['forward']['median_ms'] / 1e3)),
        'forward_backward': sig(3 * flops / 1e9 / (res['forward_backward']['median_ms'] / 1e3))}
    res['compile_count'] = dict(traces)
    if errors is not None:
      res['error'] = ({k: v for k, v in errors.items() if k not in cfg.dataflows} | errors.get(impl, {})
                      if 'status' not in errors else errors)
    if peer is not None and 'result' not in peer:
      p, msg = make_layer_peer(np.asarray(lv.nbr), real)
      t0 = time.perf_counter()
      peer['result'] = p.bench(c, cfg.warmup, cfg.peer_reps) if p else {'status': 'unavailable', 'message': msg}
      peer['result']['wall_s'] = round(time.perf_counter() - t0, 1)
      if p:
        peer['functions'] = p.last_functions
    if peer is not None:
      res['peer_torch'] = peer['result']
      self._callables[f'subm_c{c}_{impl}'] = ((fwd, (x, w) + op_args), (fwd_bwd, (x, w) + op_args + (probe,)))
    return res

  # where the 'pairs' time goes -----------------------------------------------------------------

  def profile_pairs(self, prep: Prepared, c: int):
    """The pairs layer split into its steps, each a separate jitted function on the real maps, plus
    a chunk-length sweep and a prototype that loops over chunks (no pairs x C temporaries)."""
    import jax
    import jax.numpy as jnp

    from ws3d_jax.sparse import kernel_map, ops
    cfg = self.cfg
    traces = {}
    geom = geometry_builder(prep.caps, (None,), 1, traces, 'geometry')(*geometry_args(prep))
    nbr = geom.levels[0].nbr
    n = nbr.shape[0]
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal((n, c)), jnp.float32) * geom.levels[0].valid[:, None]
    w = jnp.asarray(rng.standard_normal((27, c, c)), jnp.float32) * math.sqrt(2.0 / (27 * c))
    g = jnp.asarray(rng.standard_normal((n, c)), jnp.float32) * geom.levels[0].valid[:, None]
    t = lambda f, *a: time_jax(jax.jit(f), a, cfg.warmup, cfg.reps)['median_ms']
    zrow = lambda v: jnp.concatenate([v, jnp.zeros((1, v.shape[1]), v.dtype)])
    build = jax.jit(kernel_map.build_pairs, static_argnums=(1, 2))
    res = {'workload': f'profile of the pairs submanifold layer, C={c}', 'scene': prep.scene.name,
           'note': 'each step timed alone (its own jit, fresh output buffer); sums exceed the fused total'}
    chunk = chunk_for(c)
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

  # strided / transposed -------------------------------------------------------------------------

  def updown_workloads(self, prep: Prepared):
    cfg = self.cfg
    c = cfg.strided_channels
    errors = None
    if cfg.crop:
      try:
        errors = crop_error(prep, c, ('strided', 'transposed'), cfg.crop, cfg.check_grads)
      except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        errors = {'status': 'error', 'message': f'{type(e).__name__}: {e}'}
    for kind in ('strided', 'transposed'):
      self._run(f'{kind}_c{c}', self.updown, prep, c, kind, errors)

  def updown(self, prep: Prepared, c: int, kind: str, errors):
    import jax
    import jax.numpy as jnp

    from ws3d_jax.sparse import ops
    cfg = self.cfg
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
    x = jnp.asarray(rng.standard_normal((lin.coords.shape[0], c)), jnp.float32) * lin.valid[:, None]
    w = jnp.asarray(rng.standard_normal((8, c, c)), jnp.float32) * math.sqrt(1.0 / (8 * c))
    probe = jnp.asarray(rng.standard_normal((lout.coords.shape[0], c)), jnp.float32) * lout.valid[:, None]
    fwd = counted_jit(lambda x, w, d: op(x, w, d), traces, 'forward')
    fwd_bwd = counted_jit(jax.value_and_grad(lambda x, w, d, p: jnp.sum(op(x, w, d) * p), argnums=(0, 1)),
                          traces, 'forward_backward')
    res['forward'] = time_jax(fwd, (x, w, down), cfg.warmup, cfg.reps)
    res['forward_backward'] = time_jax(fwd_bwd, (x, w, down, probe), cfg.warmup, cfg.reps)
    if cfg.xla_memory:
      res['xla_temp_mb'] = {'forward': xla_temp_mb(fwd, (x, w, down)),
                            'forward_backward': xla_temp_mb(fwd_bwd, (x, w, down, probe))}
    n_fine, n_coarse = int(prep.counts.voxels[0]), int(prep.counts.voxels[1])
    res.update({'voxels': n_fine, 'coarse_voxels': n_coarse, 'capacity_voxels': fine.coords.shape[0],
                'capacity_coarse_voxels': coarse.coords.shape[0]})
    flops = 2.0 * n_fine * c * c
    res['useful_gflop'] = {'forward': sig(flops / 1e9), 'forward_backward': sig(3 * flops / 1e9)}
    res['executed_gflop'] = {'forward': sig(2.0 * 8 * coarse.coords.shape[0] * c * c / 1e9)}
    res['useful_gflops_per_s'] = {
        'forward': sig(flops / 1e9 / (res['forward']['median_ms'] / 1e3)),
        'forward_backward': sig(3 * flops / 1e9 / (res['forward_backward']['median_ms'] / 1e3))}
    res['compile_count'] = dict(traces)
    if errors is not None:
      res['error'] = ({k: v for k, v in errors.items() if k not in ('strided', 'transposed')}
                      | errors.get(kind, {})) if 'status' not in errors else errors
    return res

  # network --------------------------------------------------------------------------------------

  def network_prep(self, scene: Scene):
    from ws3d_jax.models import minkunet
    return prepare(scene, minkunet.NUM_LEVELS, headroom=1.1, growth=1.25)

  def network_geometry(self, prep: Prepared, spec, traces):
    build = geometry_builder(prep.caps, spec.chunk_sizes(), len(prep.caps.voxels), traces, 'geometry')
    args = geometry_args(prep)
    timing = time_jax(build, args, self.cfg.warmup, self.cfg.build_reps)
    timing['what'] = f'all {len(prep.caps.voxels)} levels: neighbour searches, pair maps, down maps'
    return build(*args), timing

  def by_level(self, prep: Prepared, geom, spec):
    """One submanifold layer per level, at the width MinkUNet's encoder uses there."""
    widths = (spec.stem,) + tuple(spec.planes[:4])
    for level, c in enumerate(widths):
      for impl in ('pairs', 'dense'):
        self._run(f'subm_level{level}_{impl}_{prep.scene.name}', self.submanifold, prep, c, impl, level,
                  None, None, geometry=geom)

  def network(self, prep: Prepared, name: str, train: bool, impl='pairs', geom=None, build_timing=None,
              geom_traces=None):
    import jax
    import jax.numpy as jnp
    import optax

    from ws3d_jax import sparse
    from ws3d_jax.models import minkunet
    cfg = self.cfg
    spec = minkunet.backbone_spec(name, impl)
    traces = dict(geom_traces or {})
    res = {'workload': f'{name} ({"forward + training step" if train else "forward"})',
           'scene': prep.scene.name, 'source': prep.scene.source, 'voxel_size_m': prep.scene.voxel_size,
           'dataflow_per_level': list(spec.impl), 'chunk_sizes': list(spec.chunk_sizes()),
           'voxels': int(prep.counts.voxels[0]), 'voxels_per_level': list(map(int, prep.counts.voxels)),
           'side_pairs_per_level': list(map(int, prep.counts.pairs)),
           'capacity_voxels_per_level': list(prep.caps.voxels), 'points': int(prep.counts.points),
           'input_channels': int(prep.scene.feats.shape[1]), 'host_prepare_ms': round(prep.host_ms, 1)}
    if geom is None:
      geom, build_timing = self.network_geometry(prep, spec, traces)
    res['kernel_map_build'] = build_timing
    sparse.check_capacity(geom.needed, geom.capacity)
    feats = prep.arrays['features']
    dtype = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[cfg.network_dtype]
    res['compute_dtype'] = cfg.network_dtype
    model = minkunet.MinkUNet(num_classes=prep.scene.num_classes, spec=spec, dtype=dtype)
    variables = jax.jit(lambda f, g: model.init(jax.random.PRNGKey(0), f, g))(feats, geom)
    res['parameters'] = int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(variables['params'])))
    res['layers'], flops = network_flops(model, variables, feats, geom, prep)
    res['useful_gflop'] = {'forward': sig(flops / 1e9), 'train_step': sig(3 * flops / 1e9)}

    fwd = counted_jit(lambda v, f, g: model.apply(v, f, g, train=False)['logits'], traces, 'forward')
    res['forward'] = time_jax(fwd, (variables, feats, geom), cfg.warmup, cfg.net_reps)
    res['forward']['what'] = 'eval-mode forward given the kernel maps (their build time is kernel_map_build)'
    res['useful_gflops_per_s'] = {'forward': sig(flops / 1e9 / (res['forward']['median_ms'] / 1e3))}
    res['error'] = {'scope': 'not checked against a dense reference here (per-layer parity: the subm_*, '
                             'strided_* and transposed_* workloads; tests/models/test_minkunet.py checks '
                             'pairs == dense for the whole network)'}
    ours = {'forward': lambda: jax.block_until_ready(fwd(variables, feats, geom))}
    rng = np.random.default_rng(3)
    labels = rng.integers(0, prep.scene.num_classes, prep.arrays['point_valid'].shape[0]).astype(np.int32)
    if train:
      tx = optax.adam(1e-3)
      mask = prep.arrays['point_valid'].astype(jnp.float32)

      def step(params, opt_state, batch_stats, feats, geom, labels, mask):
        def loss_fn(params):
          out, state = model.apply({'params': params, 'batch_stats': batch_stats}, feats, geom, train=True,
                                   mutable=['batch_stats'])
          ce = optax.softmax_cross_entropy_with_integer_labels(out['logits'], labels)
          return jnp.sum(ce * mask) / jnp.maximum(mask.sum(), 1.0), state['batch_stats']
        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new_stats, loss

      step_jit = counted_jit(step, traces, 'train_step')
      state = [variables['params'], tx.init(variables['params']), variables['batch_stats']]

      def run_step():
        p, o, b, loss = step_jit(*state, feats, geom, jnp.asarray(labels), mask)
        state[:] = [p, o, b]
        return jax.block_until_ready(loss)

      timing = time_jax(run_step, (), cfg.warmup, cfg.net_reps)
      timing['what'] = ('train-mode forward + cross-entropy on random labels + grad + optax Adam update, '
                        'given the kernel maps')
      timing['final_loss'] = float(run_step())
      res['train_step'] = timing
      res['useful_gflops_per_s']['train_step'] = sig(3 * flops / 1e9 / (timing['median_ms'] / 1e3))
      ours['train_step'] = run_step
    if cfg.network_peer:
      res['peer_torch'] = self.network_peer(prep, model, variables, geom, spec, labels, ours)
      if 'ratio_ours_over_peer' in res['peer_torch']:
        res['ratio_ours_over_peer'] = res['peer_torch']['ratio_ours_over_peer']
    res['compile_count'] = dict(traces)
    return res


  def network_peer(self, prep: Prepared, model, variables, geom, spec, labels, ours: dict) -> dict:
    """The same network in PyTorch eager on the same maps and parameters: its logits checked
    against ours, then timed alone and in interleaved rounds with ours (call by call)."""
    import jax

    from ws3d_jax.bench.torch_peer import TorchMinkUNet, torch_or_reason
    cfg = self.cfg
    torch, why = torch_or_reason()
    if torch is None:
      return {'status': 'unavailable', 'message': why}
    net = TorchMinkUNet(torch, jax.device_get(variables), geom, prep.counts.voxels, spec)
    fns = dict(zip(('forward', 'train_step'), net.functions(np.asarray(prep.arrays['features']), labels)))
    fns = {k: fn for k, fn in fns.items() if k in ours}
    valid = np.asarray(geom.point_valid)
    ref = np.asarray(model.apply(variables, prep.arrays['features'], geom, train=False)['logits'])[valid]
    got = fns['forward']().numpy()
    out = {'impl': 'torch eager, same layer list and parameters: per offset index_select -> mm -> index_add_; '
                   'strided/transposed as gather + einsum; F.batch_norm; autograd; torch.optim.Adam',
           'threads': torch.get_num_threads(), 'rows': 'real voxels only (no padding)',
           'parity': {'logits_max_abs_diff': sig(float(np.abs(got - ref).max())),
                      'logits_max_abs': sig(float(np.abs(ref).max())),
                      'what': 'eval-mode logits of the valid points, ours vs peer, same parameters'}}
    for k, fn in fns.items():
      out[k] = time_calls(fn, cfg.warmup, cfg.net_reps)
    if cfg.paired_rounds:
      times = {k: ([], []) for k in fns}
      for _ in range(cfg.paired_rounds):
        for k, peer_fn in fns.items():
          for who, fn in ((0, ours[k]), (1, peer_fn)):
            time.sleep(cfg.paired_pause_s)
            t0 = time.perf_counter()
            fn()
            times[k][who].append(time.perf_counter() - t0)
      med = {k: (float(np.median(a)), float(np.median(b))) for k, (a, b) in times.items()}
      out['interleaved'] = {'rounds': cfg.paired_rounds,
                            'ours_median_ms': {k: round(a * 1e3, 1) for k, (a, _) in med.items()},
                            'peer_median_ms': {k: round(b * 1e3, 1) for k, (_, b) in med.items()},
                            'ratio_spread': {k: [round(min(x / y for x, y in zip(*times[k])), 3),
                                                 round(max(x / y for x, y in zip(*times[k])), 3)] for k in times}}
      out['ratio_ours_over_peer'] = {k: round(a / b, 3) for k, (a, b) in med.items()}
    return out


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


def network_flops(model, variables, feats, geom, prep: Prepared):
  """Per-layer shapes (traced once, no compute) and the total useful forward FLOPs."""
  import flax.linen as nn
  import jax

  from ws3d_jax.sparse.layers import StridedConv3d, SubMConv3d, TransposedConv3d
  calls = []

  def interceptor(next_fun, args, kwargs, context):
    m = context.module
    if context.method_name == '__call__':
      if isinstance(m, (SubMConv3d, StridedConv3d, TransposedConv3d)):
        calls.append((type(m).__name__, int(args[2]), int(args[0].shape[-1]), int(m.features)))
      elif isinstance(m, nn.Dense):
        calls.append(('Dense', int(args[0].shape[0]), int(args[0].shape[-1]), int(m.features)))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    jax.eval_shape(lambda v, f, g: model.apply(v, f, g, train=False), variables, feats, geom)
  vox, pairs, caps = prep.counts.voxels, prep.counts.pairs, prep.caps.voxels
  summary, total = {}, 0.0
  for kind, level, cin, cout in calls:
    if kind == 'Dense':  # rows -> level by capacity
      level = caps.index(level) if level in caps else 0
    if kind == 'SubMConv3d':
      f = 2.0 * (vox[level] + pairs[level]) * cin * cout
    elif kind == 'StridedConv3d':
      f = 2.0 * vox[level] * cin * cout
    elif kind == 'TransposedConv3d':
      f = 2.0 * vox[level] * cin * cout
    else:
      f = 2.0 * vox[level] * cin * cout
    total += f
    s = summary.setdefault(kind, {'count': 0, 'gflop': 0.0})
    s['count'] += 1
    s['gflop'] += f / 1e9
  for s in summary.values():
    s['gflop'] = sig(s['gflop'])
  return summary, total


# --- main -----------------------------------------------------------------------------------------

def run(cfg: Config, data_root: Path, out: Path | None, extended_info: bool = False, log=print) -> dict:
  import jax
  t_start = time.perf_counter()
  info = device_info(extended_info)
  if extended_info:
    log(json.dumps(info, indent=1, default=str))
  bench = Bench(cfg, log)

  if cfg.synthetic:
    lidar, indoor = synthetic_scenes(cfg)
  else:
    kitti_path, scannet_path = data_root / KITTI_REL, data_root / SCANNET_REL
    lidar = load_kitti(kitti_path) if kitti_path.exists() else None
    indoor = load_scannet(scannet_path) if scannet_path.exists() else None
    if lidar is None:
      log(f'[bench] SemanticKITTI scan not found at {kitti_path}')
    if indoor is None:
      log(f'[bench] ScanNet scene not found at {scannet_path}')

  def missing(what, path):
    return f'{what} not found at {path} (pass --data-root, or --synthetic)'

  layer_groups = {'layers', 'updown', 'profile'} & set(cfg.only)
  if lidar is not None and layer_groups:
    layer_prep = prepare(lidar, 2, headroom=1.0, growth=cfg.layer_growth)
    log(f'[bench] {lidar.name}: {layer_prep.voxels} voxels, capacities {layer_prep.caps}')
    if 'layers' in cfg.only:
      bench.layer_workloads(layer_prep)
    if cfg.profile and 'profile' in cfg.only:
      for c in cfg.channels:
        bench._run(f'profile_pairs_c{c}', bench.profile_pairs, layer_prep, c)
    if 'updown' in cfg.only:
      bench.updown_workloads(layer_prep)
    del layer_prep
  elif layer_groups:
    for c in cfg.channels:
      for impl in cfg.dataflows:
        bench.skip(f'subm_c{c}_{impl}', missing('SemanticKITTI scan', data_root / KITTI_REL))
    for kind in ('strided', 'transposed'):
      bench.skip(f'{kind}_c{cfg.strided_channels}', missing('SemanticKITTI scan', data_root / KITTI_REL))

  from ws3d_jax.models import minkunet
  nets = [(lidar, KITTI_REL, 'SemanticKITTI scan', True)]
  nets.append((indoor, SCANNET_REL, 'ScanNet scene', cfg.scannet_network))
  for scene, rel, what, enabled in nets:
    tag = Path(rel).stem
    if not enabled or not {'network', 'by_level'} & set(cfg.only):
      continue
    if scene is None:
      bench.skip(f'{cfg.network}_{tag}', missing(what, data_root / rel))
      continue
    prep = bench.network_prep(scene)
    log(f'[bench] {scene.name}: {prep.voxels} voxels, capacities {prep.caps}')
    spec = minkunet.backbone_spec(cfg.network, 'pairs')
    traces = {}
    geom, build_timing = bench.network_geometry(prep, spec, traces)
    if 'network' in cfg.only:
      suffix = '' if cfg.network_dtype == 'float32' else f'_{cfg.network_dtype}'
      bench._run(f'{cfg.network}_{scene.name}{suffix}', bench.network, prep, cfg.network, cfg.train_step, 'pairs', geom,
                 build_timing, traces)
    if cfg.by_level and 'by_level' in cfg.only:
      bench.by_level(prep, geom, spec)  # the dense dataflow reads the same geometry's nbr tables
    del geom

  report = {
      'benchmark': 'ws3d_jax.bench.sparse_conv',
      'command': ' '.join(['python -m ws3d_jax.bench.sparse_conv'] + sys.argv[1:]),
      'config': dataclasses.asdict(cfg),
      'device': info,
      'spconv': spconv_status(),
      'notes': [
          'times: median / p90 of jit-compiled calls after warm-up, block_until_ready; first_call_ms includes '
          'compilation',
          'forward_backward: value_and_grad of sum(out * probe) w.r.t. input features and weights',
          'useful FLOPs: 2 * (real voxels + real side pairs) * Cin * Cout per submanifold layer; backward '
          'counted as 2x forward',
          'peer: PyTorch eager on the same neighbour map (real rows only); ratio_ours_over_peer = median of '
          'ours / median of peer over interleaved rounds (ours, peer, ours, ...), so both see the same load; '
          'ratio_separate_runs compares the separate timing blocks; below 1 = ours faster',
          'error: vs lax.conv_general_dilated on the densified crop of the same scan (see error.scope)',
          'load_average_*: 1/5/15-minute load of the machine; other processes running skew times',
      ],
      'workloads': bench.results,
      'total_wall_s': round(time.perf_counter() - t_start, 1),
      'jax_backend': jax.default_backend(),
  }
  if out is not None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=_json_default))
    log(f'[bench] wrote {out} ({report["total_wall_s"]} s)')
  return report


# --- markdown -------------------------------------------------------------------------------------

PERF_NOTES_PEER = {32: (36.7, 95.7), 64: (49.2, 277.0), 128: (112.0, 813.0)}  # /work/shared/PERF_NOTES.md


def _ms(t, key='median_ms'):
  return '-' if not t or key not in t else f'{t[key]:.1f}'


def _mp(t):
  return '-' if not t or 'median_ms' not in t else f'{t["median_ms"]:.1f} / {t["p90_ms"]:.1f}'


def _compiles(w):
  counts = w.get('compile_count', {})
  if counts and all(v == 1 for v in counts.values()):
    return f'1 each ({", ".join(counts)})'
  return ', '.join(f'{k} {v}' for k, v in counts.items())


def render_markdown(report: dict) -> str:
  """Markdown tables of a report (python -m ws3d_jax.bench.sparse_conv --render report.json)."""
  ws = {w['name']: w for w in report['workloads']}
  ok = lambda w: w.get('status') == 'ok'
  lines = []
  add = lines.append
  dev = report['device']
  add(f"Machine: {dev.get('cpu_model', '?')}, {dev.get('sched_cpus', dev.get('cpu_count'))} cores, backend "
      f"{dev['backend']}, jax {dev['jax']}, torch {dev.get('torch')}, GLIBC_TUNABLES="
      f"'{dev.get('glibc_tunables', '')}'; total {report['total_wall_s']} s.")
  add('')
  subm = [w for w in report['workloads'] if w['name'].startswith('subm_c') and ok(w)]
  if subm:
    w0 = subm[0]
    add(f"### One submanifold 3x3x3 layer, {w0['scene']} ({w0['voxels']} voxels, {w0['side_pairs']} side pairs, "
        f"{w0['neighbours_per_voxel']} neighbours/voxel incl. centre; capacity {w0['capacity_voxels']})")
    add('')
    add('| C | dataflow | fwd median / p90 ms | fwd+bwd median / p90 ms | kernel map ms | useful GFLOP/s fwd / '
        'fwd+bwd | peak RSS MB | XLA temp MB fwd / fwd+bwd | max abs err fwd / dx / dW (crop) | compiles |')
    add('|---|---|---|---|---|---|---|---|---|---|')
    for w in subm:
      e = w.get('error', {})
      err = ' / '.join(f'{e[k]:.1e}' for k in ('max_abs_err_fwd', 'max_abs_err_grad_x', 'max_abs_err_grad_w')
                       if k in e) or '-'
      tmp = w.get('xla_temp_mb') or {}
      add(f"| {w['channels']['in']} | {w['dataflow']} | {_mp(w['forward'])} | {_mp(w['forward_backward'])} | "
          f"{_ms(w.get('kernel_map_build'))} | {w['useful_gflops_per_s']['forward']} / "
          f"{w['useful_gflops_per_s']['forward_backward']} | {w['peak_rss_mb']} | "
          f"{tmp.get('forward', '-')} / {tmp.get('forward_backward', '-')} | {err} | "
          f"{_compiles(w)} |")
    add('')
    add('### Peer: PyTorch eager on the same neighbour map (ratio = ours / peer; <= 1.0 means ours is as fast)')
    add('')
    add('Ratios from interleaved rounds (ours, peer, ours, ...: both see the same load); peer times are its '
        'own timing block.')
    add('')
    add('| C | peer fwd ms | peer fwd+bwd ms | pairs ratio fwd / fwd+bwd | dense ratio fwd / fwd+bwd | '
        'target (a) fwd+bwd <= 1.0 | PERF_NOTES peer fwd / fwd+bwd |')
    add('|---|---|---|---|---|---|---|')
    for c in report['config']['channels']:
      wp, wd = ws.get(f'subm_c{c}_pairs'), ws.get(f'subm_c{c}_dense')
      peer = (wp or wd or {}).get('peer_torch', {})
      rp = (wp or {}).get('ratio_ours_over_peer', {})
      rd = (wd or {}).get('ratio_ours_over_peer', {})
      best = min([r['forward_backward'] for r in (rp, rd) if r] or [float('nan')])
      met = 'met' if best <= 1.0 else ('NOT met' if best == best else '-')
      notes = PERF_NOTES_PEER.get(c)
      add(f"| {c} | {_ms(peer.get('forward'))} | {_ms(peer.get('forward_backward'))} | "
          f"{rp.get('forward', '-')} / {rp.get('forward_backward', '-')} | "
          f"{rd.get('forward', '-')} / {rd.get('forward_backward', '-')} | {met} (best {best}) | "
          f"{'%s / %s' % notes if notes else '-'} |")
    add('')
  updown = [w for w in report['workloads'] if w['name'].split('_')[0] in ('strided', 'transposed') and ok(w)]
  if updown:
    add('### Strided 2x2x2 and transposed layers')
    add('')
    add('| layer | C | fine / coarse voxels | fwd median / p90 ms | fwd+bwd median / p90 ms | kernel map ms | '
        'useful GFLOP/s fwd | peak RSS MB | max abs err fwd / dx / dW (crop) |')
    add('|---|---|---|---|---|---|---|---|---|')
    for w in updown:
      e = w.get('error', {})
      err = ' / '.join(f'{e[k]:.1e}' for k in ('max_abs_err_fwd', 'max_abs_err_grad_x', 'max_abs_err_grad_w')
                       if k in e) or '-'
      add(f"| {w['name'].split('_')[0]} | {w['channels']['in']} | {w['voxels']} / {w['coarse_voxels']} | "
          f"{_mp(w['forward'])} | {_mp(w['forward_backward'])} | {_ms(w.get('kernel_map_build'))} | "
          f"{w['useful_gflops_per_s']['forward']} | {w['peak_rss_mb']} | {err} |")
    add('')
  prof = [w for w in report['workloads'] if w['name'].startswith('profile_pairs') and ok(w)]
  if prof:
    add("### Where the 'pairs' time goes (each step its own jit; ms)")
    add('')
    keys = list(prof[0]['steps_ms'])
    add('| step | ' + ' | '.join(f"C={w['name'].rsplit('c', 1)[1]} (chunk {w['chunk']})" for w in prof) + ' |')
    add('|---|' + '---|' * len(prof))
    for k in keys:
      add(f'| {k} | ' + ' | '.join(f"{w['steps_ms'][k]:.1f}" for w in prof) + ' |')
    add('')
    add('| C | chunk | chunks | fwd ms | fwd+bwd ms | scan-over-chunks prototype fwd ms |')
    add('|---|---|---|---|---|---|')
    for w in prof:
      for ch, v in w['chunk_sweep'].items():
        add(f"| {w['name'].rsplit('c', 1)[1]} | {ch} | {v['chunks']} | {v['forward_ms']:.1f} | "
            f"{v['forward_backward_ms']:.1f} | {v['scan_prototype_forward_ms']:.1f} |")
    add('')
  lvl = [w for w in report['workloads'] if w['name'].startswith('subm_level') and ok(w)]
  if lvl:
    add('### One submanifold layer per stride (MinkUNet pyramid; width of the encoder at that level)')
    add('')
    add('| scene | level (stride) | voxels | neighbours/voxel | C | pairs fwd / fwd+bwd ms | dense fwd / fwd+bwd ms '
        '| faster fwd+bwd |')
    add('|---|---|---|---|---|---|---|---|')
    for w in lvl:
      if w['dataflow'] != 'pairs':
        continue
      d = ws.get(w['name'].replace('_pairs_', '_dense_'), {})
      if not ok(d):
        continue
      fp, fd = w['forward_backward']['median_ms'], d['forward_backward']['median_ms']
      add(f"| {w['scene']} | {w['level']} ({w['stride']}) | {w['voxels']} | {w['neighbours_per_voxel']} | "
          f"{w['channels']['in']} | {_ms(w['forward'])} / {_ms(w['forward_backward'])} | "
          f"{_ms(d['forward'])} / {_ms(d['forward_backward'])} | "
          f"{'pairs' if fp <= fd else 'dense'} ({max(fp, fd) / min(fp, fd):.2f}x) |")
    add('')
  nets = [w for w in report['workloads'] if w['name'].startswith('minkunet') and ok(w)]
  if nets:
    add('### MinkUNet')
    add('')
    add('| network / scene | voxels (per level) | kernel maps ms | fwd median / p90 ms | train step median / p90 ms '
        '| useful GFLOP fwd | useful GFLOP/s fwd / step | first call ms fwd / step | peak RSS MB | compiles |')
    add('|---|---|---|---|---|---|---|---|---|---|')
    for w in nets:
      ts = w.get('train_step')
      gs = w['useful_gflops_per_s']
      add(f"| {w['name']} | {w['voxels']} ({', '.join(map(str, w['voxels_per_level']))}) | "
          f"{_ms(w['kernel_map_build'])} | {_mp(w['forward'])} | {_mp(ts)} | {w['useful_gflop']['forward']} | "
          f"{gs['forward']} / {gs.get('train_step', '-')} | {_ms(w['forward'], 'first_call_ms')} / "
          f"{_ms(ts, 'first_call_ms')} | {w['peak_rss_mb']} | {_compiles(w)} |")
    add('')
    peers = [w for w in nets if 'forward' in w.get('peer_torch', {})]
    if peers:
      add('Peer: the same network in PyTorch eager, same maps and parameters (ratio = ours / peer from '
          'interleaved rounds, [min, max] over the rounds):')
      add('')
      add('| network / scene | logits max abs diff (of max) | peer fwd ms | peer step ms | ratio fwd | ratio step |')
      add('|---|---|---|---|---|---|')
      for w in peers:
        pt, r = w['peer_torch'], w['peer_torch'].get('ratio_ours_over_peer', {})
        spread = pt.get('interleaved', {}).get('ratio_spread', {})
        cell = lambda k: f"{r[k]} {spread.get(k, '')}" if k in r else '-'
        add(f"| {w['name']} | {pt['parity']['logits_max_abs_diff']:.1e} ({pt['parity']['logits_max_abs']}) | "
            f"{_ms(pt['forward'])} | {_ms(pt.get('train_step'))} | {cell('forward')} | {cell('train_step')} |")
      add('')
  skipped = [w for w in report['workloads'] if w.get('status') != 'ok']
  for w in skipped:
    add(f"- {w['name']}: {w['status']}: {w.get('message')}")
  return '\n'.join(lines)


def _json_default(o):
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  return str(o)


def parse_args(argv=None):
  p = argparse.ArgumentParser(prog='python -m ws3d_jax.bench.sparse_conv', description=__doc__.split('\n')[0])
  p.add_argument('--out', type=Path, default=Path('report.json'), help='JSON report path')
  p.add_argument('--render', type=Path, default=None, help='print markdown tables of an existing report and exit')
  p.add_argument('--quick', action='store_true', help='32/64 channels, fewer repetitions, MinkUNet14 forward '
                 'only: under 2 minutes on 2 CPU cores')
  p.add_argument('--device-info', action='store_true', help='print the device description (and store '
                 'memory stats in the report)')
  p.add_argument('--data-root', type=Path, default=DEFAULT_DATA, help=f'folder holding {KITTI_REL} and '
                 f'{SCANNET_REL} (default: ../shared/data beside the repo)')
  p.add_argument('--synthetic', action='store_true', help='procedural LiDAR sweep and room instead of the '
                 'real scans (for smoke tests)')
  p.add_argument('--channels', type=str, default=None, help='comma list, e.g. 32,64')
  p.add_argument('--reps', type=int, default=None, help='timed repetitions per layer workload')
  p.add_argument('--dense-max-channels', type=int, default=None, help="run the 'dense' dataflow only up to this width")
  p.add_argument('--network', choices=sorted(['minkunet14', 'minkunet18', 'minkunet34']), default=None)
  p.add_argument('--network-dtype', choices=['float32', 'bfloat16'], default=None,
                 help='compute dtype of the network workloads (parameters stay float32)')
  p.add_argument('--no-train-step', action='store_true')
  p.add_argument('--train-step', action='store_true', help='time the network train step also under --quick')
  p.add_argument('--no-network-peer', action='store_true', help='skip the PyTorch MinkUNet peer')
  p.add_argument('--no-by-level', action='store_true')
  p.add_argument('--no-profile', action='store_true', help='skip the step-by-step profile of the pairs layer')
  p.add_argument('--only', type=str, default=None, help=f'comma list of workload groups out of {",".join(GROUPS)}')
  p.add_argument('--malloc-hugepages', action='store_true',
                 help='re-run under GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc >= 2.35: large buffers get '
                 'transparent huge pages, far fewer page faults)')
  p.add_argument('--no-crop-check', action='store_true', help='skip the dense-reference error checks')
  return p.parse_args(argv)


def config_from_args(args) -> Config:
  cfg = Config.quick() if args.quick else Config()
  if args.channels:
    cfg.channels = tuple(int(c) for c in args.channels.split(','))
  if args.reps:
    cfg.reps = args.reps
  if args.dense_max_channels is not None:
    cfg.dense_max_channels = args.dense_max_channels
  if args.network:
    cfg.network = args.network
  if args.network_dtype:
    cfg.network_dtype = args.network_dtype
  if args.no_train_step:
    cfg.train_step = False
  if args.train_step:
    cfg.train_step = True
  if args.no_network_peer:
    cfg.network_peer = False
  if args.no_by_level:
    cfg.by_level = False
  if args.only:
    cfg.only = tuple(g.strip() for g in args.only.split(','))
    unknown = set(cfg.only) - set(GROUPS)
    if unknown:
      raise SystemExit(f'--only: unknown group(s) {sorted(unknown)}; choose from {", ".join(GROUPS)}')
  if args.no_profile:
    cfg.profile = False
  if args.no_crop_check:
    cfg.crop = None
  if args.synthetic:
    cfg.synthetic = True
  return cfg


HUGEPAGE_TUNABLE = 'glibc.malloc.hugetlb=1'


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    print(render_markdown(json.loads(args.render.read_text())))
    return {}
  if args.malloc_hugepages and HUGEPAGE_TUNABLE not in os.environ.get('GLIBC_TUNABLES', ''):
    # glibc reads its tunables at process start: re-execute this command with the tunable set.
    env = dict(os.environ)
    env['GLIBC_TUNABLES'] = ':'.join(filter(None, [env.get('GLIBC_TUNABLES'), HUGEPAGE_TUNABLE]))
    argv = sys.argv[1:] if argv is None else list(argv)
    os.execve(sys.executable, [sys.executable, '-m', 'ws3d_jax.bench.sparse_conv'] + argv, env)
  cfg = config_from_args(args)
  return run(cfg, args.data_root, args.out, args.device_info)


if __name__ == '__main__':
  main()

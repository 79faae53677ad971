"""The workload groups of the sparse-convolution benchmark (``Bench``): each workload run one by one,
its peak memory, machine load and wall time recorded beside its result, a failed one recorded as an
error without losing the others.

Groups: 'layers' (one submanifold layer per width and dataflow, with the PyTorch layer peer on the
same neighbour map, and the error check on a crop), 'profile' (the 'pairs' layer step by step),
'updown' (strided and transposed layers), 'network' (MinkUNet) and 'by_level' (one submanifold layer
per stride of the network's pyramid, on the network's maps).
"""
from __future__ import annotations

import time
import traceback

import numpy as np

from ws3d_jax.bench import layer_workloads, network_workloads
from ws3d_jax.bench.crop_check import crop_error
from ws3d_jax.bench.harness import Memory, load_average
from ws3d_jax.bench.prepared import Prepared, prepare
from ws3d_jax.bench.scenes import Scene
from ws3d_jax.bench.settings import Config
from ws3d_jax.bench.torch_peer import make_layer_peer, spconv_status


class Bench:

  def __init__(self, cfg: Config, log=print):
    self.cfg = cfg
    self.log = log
    self.results = []
    self.memory = Memory()
    self._callables = {}  # name -> {'forward' | 'forward_backward': (jitted fn, args)} for interleaved rounds

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

  # single layers on the LiDAR scan ----------------------------------------------------------------

  def layer_groups(self, scene: Scene):
    """The 'layers', 'profile' and 'updown' groups, on two levels of the scan with tight padding."""
    cfg = self.cfg
    prep = prepare(scene, 2, headroom=1.0, growth=cfg.layer_growth)
    self.log(f'[bench] {scene.name}: {prep.voxels} voxels, capacities {prep.caps}')
    if 'layers' in cfg.only:
      self.layer_workloads(prep)
    if cfg.profile and 'profile' in cfg.only:
      for c in cfg.channels:
        self._run(f'profile_pairs_c{c}', layer_workloads.profile_pairs, cfg, prep, c)
    if 'updown' in cfg.only:
      self.updown_workloads(prep)

  def skip_layer_groups(self, message: str):
    cfg = self.cfg
    for c in cfg.channels:
      for impl in cfg.dataflows:
        self.skip(f'subm_c{c}_{impl}', message)
    for kind in ('strided', 'transposed'):
      self.skip(f'{kind}_c{cfg.strided_channels}', message)

  def layer_workloads(self, prep: Prepared):
    cfg = self.cfg
    peer_status = spconv_status()
    for c in cfg.channels:
      flows = [f for f in cfg.dataflows if f != 'dense' or c <= cfg.dense_max_channels]
      errors = None
      if cfg.crop:
        t0 = time.perf_counter()
        errors = self._crop_errors(prep, c, flows, cfg.small_crop if c >= cfg.big_crop_channels else cfg.crop)
        self.log(f'[bench] error check at {c} channels: {time.perf_counter() - t0:.1f} s')
      peer = {}
      for impl in flows:
        res = self._run(f'subm_c{c}_{impl}', self.submanifold, prep, c, impl, errors, peer)
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

  def submanifold(self, prep: Prepared, c: int, impl: str, errors, peer: dict) -> dict:
    """One 'layers' workload: the layer, its crop errors, and the PyTorch layer peer (benchmarked once
    per width, inside the first dataflow's workload, on the same neighbour map)."""
    cfg = self.cfg
    res, timed, nbr = layer_workloads.submanifold(cfg, prep, c, impl)
    if errors is not None:
      res['error'] = _errors_of(errors, cfg.dataflows, impl)
    if 'result' not in peer:
      p, msg = make_layer_peer(np.asarray(nbr), int(prep.counts.voxels[0]))
      t0 = time.perf_counter()
      peer['result'] = p.bench(c, cfg.warmup, cfg.peer_reps) if p else {'status': 'unavailable', 'message': msg}
      peer['result']['wall_s'] = round(time.perf_counter() - t0, 1)
      if p:
        peer['functions'] = p.last_functions
    res['peer_torch'] = peer['result']
    self._callables[f'subm_c{c}_{impl}'] = timed
    return res

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
      for kind, peer_fn in (('forward', p_fwd), ('forward_backward', p_fb)):
        for impl, fns in contenders.items():
          fn, args = fns[kind]
          time.sleep(self.cfg.paired_pause_s)  # lets the other runtime's spinning worker threads go idle
          t0 = time.perf_counter()
          jax.block_until_ready(fn(*args))
          times[impl][kind].append(time.perf_counter() - t0)
        time.sleep(self.cfg.paired_pause_s)
        t0 = time.perf_counter()
        peer_fn()
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

  def updown_workloads(self, prep: Prepared):
    cfg = self.cfg
    c = cfg.strided_channels
    kinds = ('strided', 'transposed')
    errors = self._crop_errors(prep, c, kinds, cfg.crop) if cfg.crop else None
    for kind in kinds:
      self._run(f'{kind}_c{c}', self.updown, prep, c, kind, errors)

  def updown(self, prep: Prepared, c: int, kind: str, errors) -> dict:
    res = layer_workloads.updown(self.cfg, prep, c, kind)
    if errors is not None:
      res['error'] = _errors_of(errors, ('strided', 'transposed'), kind)
    return res

  def _crop_errors(self, prep: Prepared, c: int, kinds, crop) -> dict:
    try:
      return crop_error(prep, c, kinds, crop, self.cfg.check_grads, self.cfg.chunk)
    except Exception as e:  # noqa: BLE001 - the timings are still worth having
      traceback.print_exc()
      return {'status': 'error', 'message': f'{type(e).__name__}: {e}'}

  # the network on one scene -----------------------------------------------------------------------

  def network_groups(self, scene: Scene):
    """The 'network' and 'by_level' groups on one scene, sharing one build of its kernel maps."""
    from ws3d_jax.models import minkunet
    cfg = self.cfg
    prep = network_workloads.network_prep(scene)
    self.log(f'[bench] {scene.name}: {prep.voxels} voxels, capacities {prep.caps}')
    spec = minkunet.backbone_spec(cfg.network, 'pairs')
    traces = {}
    geom, build_timing = network_workloads.network_geometry(cfg, prep, spec, traces)
    if 'network' in cfg.only:
      suffix = '' if cfg.network_dtype == 'float32' else f'_{cfg.network_dtype}'
      self._run(f'{cfg.network}_{scene.name}{suffix}', network_workloads.network, cfg, prep, cfg.network,
                cfg.train_step, 'pairs', geom, build_timing, traces)
    if cfg.by_level and 'by_level' in cfg.only:
      self.by_level(prep, geom, spec)  # the dense dataflow reads the same geometry's nbr tables

  def by_level(self, prep: Prepared, geom, spec):
    """One submanifold layer per level, at the width MinkUNet's encoder uses there."""
    widths = (spec.stem,) + tuple(spec.planes[:4])
    for level, c in enumerate(widths):
      for impl in ('pairs', 'dense'):
        self._run(f'subm_level{level}_{impl}_{prep.scene.name}', self._layer_at, prep, c, impl, level, geom)

  def _layer_at(self, prep: Prepared, c: int, impl: str, level: int, geom) -> dict:
    return layer_workloads.submanifold(self.cfg, prep, c, impl, level, geom)[0]


def _errors_of(errors: dict, kinds, kind: str) -> dict:
  """The crop check's result for one kind: its shared entries (scope, crop size, ...) and its own."""
  if 'status' in errors:
    return errors
  return {k: v for k, v in errors.items() if k not in kinds} | errors.get(kind, {})

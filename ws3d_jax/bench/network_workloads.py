"""The network workloads of the sparse-convolution benchmark: MinkUNet forward (eval mode) and one
training step (cross-entropy on random labels, grad, optax Adam update) on a prepared scene, with the
same network in PyTorch eager as its peer, and the network's useful FLOPs layer by layer."""
from __future__ import annotations

import time

import numpy as np

from ws3d_jax.bench.harness import counted_jit, sig, time_calls, time_jax
from ws3d_jax.bench.prepared import Prepared, geometry_args, geometry_builder, prepare
from ws3d_jax.bench.scenes import Scene
from ws3d_jax.bench.settings import Config


def network_prep(scene: Scene) -> Prepared:
  from ws3d_jax.models import minkunet
  return prepare(scene, minkunet.NUM_LEVELS, headroom=1.1, growth=1.25)


def network_geometry(cfg: Config, prep: Prepared, spec, traces):
  """The kernel maps of every level, built once, and the build's timing."""
  build = geometry_builder(prep.caps, spec.chunk_sizes(), len(prep.caps.voxels), traces, 'geometry')
  args = geometry_args(prep)
  timing = time_jax(build, args, cfg.warmup, cfg.build_reps)
  timing['what'] = f'all {len(prep.caps.voxels)} levels: neighbour searches, pair maps, down maps'
  return build(*args), timing


def network(cfg: Config, prep: Prepared, name: str, train: bool, impl='pairs', geom=None, build_timing=None,
            geom_traces=None) -> dict:
  import jax
  import jax.numpy as jnp
  import optax

  from ws3d_jax import sparse
  from ws3d_jax.models import minkunet
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
    geom, build_timing = network_geometry(cfg, prep, spec, traces)
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

  fwd = counted_jit(lambda v, f, g: model.apply(v, f, g, train=False).logits, traces, 'forward')
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
        ce = optax.softmax_cross_entropy_with_integer_labels(out.logits, labels)
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
    res['peer_torch'] = network_peer(cfg, prep, model, variables, geom, spec, labels, ours)
    if 'ratio_ours_over_peer' in res['peer_torch']:
      res['ratio_ours_over_peer'] = res['peer_torch']['ratio_ours_over_peer']
  res['compile_count'] = dict(traces)
  return res


def network_peer(cfg: Config, prep: Prepared, model, variables, geom, spec, labels, ours: dict) -> dict:
  """The same network in PyTorch eager on the same maps and parameters: its logits checked
  against ours, then timed alone and in interleaved rounds with ours (call by call)."""
  import jax

  from ws3d_jax.bench.torch_peer import TorchMinkUNet, torch_or_reason
  torch, why = torch_or_reason()
  if torch is None:
    return {'status': 'unavailable', 'message': why}
  net = TorchMinkUNet(torch, jax.device_get(variables), geom, prep.counts.voxels, spec)
  fns = dict(zip(('forward', 'train_step'), net.functions(np.asarray(prep.arrays['features']), labels)))
  fns = {k: fn for k, fn in fns.items() if k in ours}
  valid = np.asarray(geom.point_valid)
  ref = np.asarray(model.apply(variables, prep.arrays['features'], geom, train=False).logits)[valid]
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
    # A submanifold layer also multiplies its side pairs; strided, transposed and 1x1 layers one row each.
    f = 2.0 * (vox[level] + (pairs[level] if kind == 'SubMConv3d' else 0)) * cin * cout
    total += f
    s = summary.setdefault(kind, {'count': 0, 'gflop': 0.0})
    s['count'] += 1
    s['gflop'] += f / 1e9
  for s in summary.values():
    s['gflop'] = sig(s['gflop'])
  return summary, total

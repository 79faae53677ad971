"""How far the training step is from its physical limit: useful against executed FLOPs.

    python -m ws3d_jax.bench.step_flops --config=configs/synthetic.py [--attainable_gflops=130]

It builds the run as ``ws3d_jax.bench.train_step`` does (its --config, --set and --workdir).

Useful FLOPs count the work on real voxels and real pairs only, layer by layer of the network as
built (``useful_forward_flops``): a submanifold convolution 2 (N + P) Cin Cout at its level (N real
voxels, each its own centre, P real side pairs), a strided or transposed 2x2x2 convolution
2 N_fine Cin Cout (each fine voxel has one parent), a 1x1 layer 2 N Cin Cout; the backward pass
twice the forward (the input and the weight gradients); every view of every scene of one batch.
Executed FLOPs are what XLA's cost analysis counts in the compiled step: the padding of the
capacity buckets and of the pair chunks, the losses and the optimiser included (before issue 24 the
strided and transposed convolutions computed all 8 child slots of every parent), plus the fused
kernel's, which XLA does not see and which are the useful ones of the layers it runs. The lower bound of the step is the useful FLOPs at the attainable rate of
this machine at these shapes (docs/benchmarks.md: about 130 GFLOP/s on the 2-core CPU).
"""
from __future__ import annotations

import json
import time

from absl import app, flags

from ws3d_jax.bench import train_step

_ATTAINABLE = flags.DEFINE_float('attainable_gflops', 130.0, 'attainable GFLOP/s of this machine at these shapes')


def useful_forward_flops(spec, voxels, pairs, in_features: int, num_classes: int, embed_dim: int = 0,
                         contrast_stages=(), kernel_levels=None) -> int:
  """Forward FLOPs of MinkUNet (models/minkunet.py, as ``spec`` builds it) plus WS3DNet's
  projection heads on one view with ``voxels[l]`` real voxels and ``pairs[l]`` real side pairs
  at level l. With ``kernel_levels`` (a set of levels), only the convolutions the fused kernel
  runs there: the submanifold ones, and the strided and transposed ones whose fine level it is."""
  n, p = voxels, pairs
  every = kernel_levels is None

  def subm(level, cin, cout):
    return 2 * (n[level] + p[level]) * cin * cout if every or level in kernel_levels else 0

  def updown(level, cin, cout):
    return 2 * n[level] * cin * cout if every or level in kernel_levels else 0

  dense = lambda count, cin, cout: 2 * count * cin * cout if every else 0

  def blocks(count, level, c, planes):
    flops = 0
    for _ in range(count):
      flops += subm(level, c, planes) + subm(level, planes, planes) + (dense(n[level], c, planes) if c != planes else 0)
      c = planes
    return flops, c

  total, c = subm(0, in_features, spec.stem), spec.stem
  stage_channels = [c]
  down = spec.num_levels - 1
  for i in range(down):
    total += updown(i, c, c)  # strided: each fine voxel feeds its one parent
    f, c = blocks(spec.blocks[i], i + 1, c, spec.planes[i])
    total += f
    stage_channels.append(c)
  for j in range(down):
    level, planes = down - 1 - j, spec.planes[down + j]
    total += updown(level, c, planes)  # transposed: each fine voxel reads its one parent
    f, c = blocks(spec.blocks[down + j], level, planes + stage_channels[level], planes)
    total += f
  total += dense(n[0], c, num_classes)
  for m in contrast_stages:
    total += dense(n[m], stage_channels[m], stage_channels[m]) + dense(n[m], stage_channels[m], embed_dim)
  return int(total)


def useful_step_flops(run, batch, kernel_levels=None) -> int:
  """Forward and backward (3x forward) over every view of one (sharded) batch of ``run`` (with
  ``kernel_levels``: of the convolutions the fused kernel runs at those levels only)."""
  import numpy as np  # noqa: PLC0415

  from ws3d_jax import sparse  # noqa: PLC0415
  model = run.model
  ws3d = getattr(model, 'ws3d', model)
  total = 0
  for view in batch.views:
    for d in range(view.coords.shape[0]):
      valid = np.asarray(view.voxel_valid[d])
      counts = sparse.count_structure(np.asarray(view.coords[d])[valid], int(np.asarray(view.point_valid[d]).sum()),
                                      ws3d.spec.num_levels)
      total += 3 * useful_forward_flops(ws3d.spec, counts.voxels, counts.pairs, view.features.shape[-1],
                                        ws3d.num_classes, ws3d.embed_dim, ws3d.contrast_stages, kernel_levels)
  return total


def fused_levels(run) -> set:
  """The levels whose convolutions run the fused kernel: XLA's cost analysis does not see inside
  it, and it computes exactly the useful FLOPs (real voxels, real pairs, real children)."""
  spec = getattr(run.model, 'ws3d', run.model).spec
  return {level for level, impl in enumerate(spec.impl) if impl == 'fused'}


def compiled_step(run, batch, state, rng) -> dict:
  """The compiled train step: its FLOPs by XLA's cost analysis (every device's share), the
  seconds its compile took and its kernels (the instructions of the optimized program's entry
  computation, a fusion counting once: what the CPU runtime launches a step)."""
  from ws3d_jax.train import steps  # noqa: PLC0415
  lowered = steps.train_step.lower(state, batch.on_device(), rng, batch.caps, run.model, run.objective,
                                   run.task.reader)
  t0 = time.perf_counter()
  compiled = lowered.compile()
  seconds = time.perf_counter() - t0
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return {'flops': float(analysis['flops']) * batch.views[0].coords.shape[0], 'compile_s': seconds,
          'kernels': _entry_instructions(compiled.as_text())}


def _entry_instructions(hlo: str) -> int:
  entry = hlo[hlo.index('\nENTRY '):]
  body = entry[entry.index('{') + 1:entry.index('\n}')]
  skip = ('parameter(', 'get-tuple-element(', 'tuple(', 'constant(', 'bitcast(')
  return sum(1 for line in body.splitlines() if ' = ' in line and not any(k in line for k in skip))


def main(argv):
  del argv
  import jax  # noqa: PLC0415

  from ws3d_jax import runtime  # noqa: PLC0415
  runtime.configure()
  from ws3d_jax.train import steps  # noqa: PLC0415

  config = train_step.load_config(train_step._CONFIG.value, train_step._OVERRIDES.value)
  run, stream = train_step.run_and_stream(config, train_step._WORKDIR.value)
  batch = next(stream)
  state = steps.replicate(steps.initial_state(config.seed, run.model, run.tx, run.batcher, run.example))
  rng = steps.replicate(jax.random.PRNGKey(1))
  useful = useful_step_flops(run, batch)
  compiled = compiled_step(run, batch, state, rng)
  in_kernel = useful_step_flops(run, batch, fused_levels(run))
  executed = compiled['flops'] + in_kernel
  report = {'config': train_step._CONFIG.value, 'overrides': train_step._OVERRIDES.value,
            'caps_voxels': list(batch.caps.voxels), 'useful_gflop': useful / 1e9,
            'executed_gflop': executed / 1e9, 'of_which_fused_kernel_gflop': in_kernel / 1e9,
            'executed_over_useful': executed / max(useful, 1),
            'compile_s': compiled['compile_s'], 'kernels': compiled['kernels'],
            'attainable_gflops': _ATTAINABLE.value, 'lower_bound_s': useful / 1e9 / _ATTAINABLE.value}
  print(json.dumps(report, indent=1))


if __name__ == '__main__':
  app.run(main)

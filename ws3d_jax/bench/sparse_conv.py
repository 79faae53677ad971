"""Sparse-convolution benchmark: single layers, dataflows per stride, MinkUNet, and a PyTorch peer.

    PYTHONPATH=. python -m ws3d_jax.bench.sparse_conv --out report.json [--quick] [--device-info]

Workloads (each skipped with a message when its data file is absent):

* ``subm_c{C}_{pairs|dense}``: one submanifold 3x3x3 layer (Cin = Cout = C) on the real
  SemanticKITTI scan 00/000000 at 5 cm, for both dataflows, with a PyTorch eager peer on the SAME
  neighbour map (per offset index_select -> mm -> index_add_) and spconv when importable. The
  'pairs' dataflow runs with the network's pair-map chunk length (``minkunet.BackboneSpec.chunk``).
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

Errors are against the dense reference (``ws3d_jax.sparse.reference``: ``lax.conv_general_dilated``
on a densified grid). The full scan's grid is far too large (3122 x 2013 x 289 voxels), so the
check runs on a crop of the same scan (the densest aligned block of ``crop`` voxels), with the
workload's channel count; the JSON says so per workload (``error.scope``).

Peak memory: on CPU the process's peak resident set, reset before each workload through
/proc/self/clear_refs where the kernel allows it (``peak_rss_scope`` says which); on a GPU the
device's ``peak_bytes_in_use``. ``xla_temp_mb`` is XLA's own figure for the compiled function's
scratch memory.

This module is the command line; the benchmark's parts: settings.py (Config), scenes.py and
prepared.py (its inputs), layer_workloads.py, network_workloads.py and crop_check.py (what it runs),
workloads.py (Bench: runs and records them), report.py (notes and markdown).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from ws3d_jax.bench.harness import device_info
from ws3d_jax.bench.report import NOTES, render_markdown, write_report
from ws3d_jax.bench.scenes import DEFAULT_DATA, kitti_path, kitti_scene, scannet_path, scannet_scene, synthetic_scenes
from ws3d_jax.bench.settings import GROUPS, Config
from ws3d_jax.bench.torch_peer import spconv_status
from ws3d_jax.bench.workloads import Bench


def main(argv=None) -> dict:
  args = parse_args(argv)
  if args.render:
    print(render_markdown(json.loads(args.render.read_text())))
    return {}
  if args.malloc_hugepages:
    # glibc reads its tunables at process start: re-execute this command with the tunable set.
    from ws3d_jax import runtime
    runtime.reexec_with_malloc_hugepages(None if argv is None else ['-m', 'ws3d_jax.bench.sparse_conv', *argv])
  cfg = config_from_args(args)
  return run(cfg, args.data_root, args.out, args.device_info)


def run(cfg: Config, data_root: Path, out: Path | None, extended_info: bool = False, log=print) -> dict:
  import jax
  t_start = time.perf_counter()
  info = device_info(extended_info)
  if extended_info:
    log(json.dumps(info, indent=1, default=str))
  bench = Bench(cfg, log)
  kitti, scannet = kitti_path(data_root), scannet_path(data_root)
  if cfg.synthetic:
    lidar, indoor = synthetic_scenes(cfg.synthetic_size)
  else:
    lidar, indoor = kitti_scene(data_root), scannet_scene(data_root)
    if lidar is None:
      log(f'[bench] SemanticKITTI scan not found at {kitti}')
    if indoor is None:
      log(f'[bench] ScanNet scene not found at {scannet}')

  def missing(what, path):
    return f'{what} not found at {path} (pass --data-root, or --synthetic)'

  if {'layers', 'updown', 'profile'} & set(cfg.only):
    if lidar is not None:
      bench.layer_groups(lidar)
    else:
      bench.skip_layer_groups(missing('SemanticKITTI scan', kitti))
  for scene, path, what, enabled in ((lidar, kitti, 'SemanticKITTI scan', True),
                                     (indoor, scannet, 'ScanNet scene', cfg.scannet_network)):
    if not enabled or not {'network', 'by_level'} & set(cfg.only):
      continue
    if scene is None:
      bench.skip(f'{cfg.network}_{path.stem}', missing(what, path))
    else:
      bench.network_groups(scene)

  report = {
      'benchmark': 'ws3d_jax.bench.sparse_conv',
      'command': ' '.join(['python -m ws3d_jax.bench.sparse_conv'] + sys.argv[1:]),
      'config': dataclasses.asdict(cfg),
      'layer_chunk': cfg.chunk,
      'device': info,
      'spconv': spconv_status(),
      'notes': NOTES,
      'workloads': bench.results,
      'total_wall_s': round(time.perf_counter() - t_start, 1),
      'jax_backend': jax.default_backend(),
  }
  if out is not None:
    write_report(report, out)
    log(f'[bench] wrote {out} ({report["total_wall_s"]} s)')
  return report


def parse_args(argv=None):
  p = argparse.ArgumentParser(prog='python -m ws3d_jax.bench.sparse_conv', description=__doc__.split('\n')[0])
  p.add_argument('--out', type=Path, default=Path('report.json'), help='JSON report path')
  p.add_argument('--render', type=Path, default=None, help='print markdown tables of an existing report and exit')
  p.add_argument('--quick', action='store_true', help='32/64 channels, fewer repetitions, MinkUNet14 forward '
                 'only: under 2 minutes on 2 CPU cores')
  p.add_argument('--device-info', action='store_true', help='print the device description (and store '
                 'memory stats in the report)')
  p.add_argument('--data-root', type=Path, default=DEFAULT_DATA, help=f'folder holding {kitti_path("")} and '
                 f'{scannet_path("")} (default: ../shared/data beside the repo)')
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


if __name__ == '__main__':
  main()

"""The sparse-convolution benchmark's report: the notes that explain its JSON, writing it, and its
markdown tables (``python -m ws3d_jax.bench.sparse_conv --render report.json``)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NOTES = [
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
    "layer_chunk: pair-map chunk length of the single-layer 'pairs' workloads, the network's own "
    '(minkunet.BackboneSpec.chunk)',
]


def write_report(report: dict, out: Path):
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(report, indent=1, default=_json_default))


PERF_NOTES_PEER = {32: (36.7, 95.7), 64: (49.2, 277.0), 128: (112.0, 813.0)}  # /work/shared/PERF_NOTES.md


def _ms(t, key='median_ms'):
  return '-' if not t or key not in t else f'{t[key]:.1f}'


def _mp(t):
  return '-' if not t or 'median_ms' not in t else f'{t["median_ms"]:.1f} / {t["p90_ms"]:.1f}'


def _errors(w):
  e = w.get('error', {})
  return ' / '.join(f'{e[k]:.1e}' for k in ('max_abs_err_fwd', 'max_abs_err_grad_x', 'max_abs_err_grad_w')
                    if k in e) or '-'


def _compiles(w):
  counts = w.get('compile_count', {})
  if counts and all(v == 1 for v in counts.values()):
    return f'1 each ({", ".join(counts)})'
  return ', '.join(f'{k} {v}' for k, v in counts.items())


def render_markdown(report: dict) -> str:
  """Markdown tables of a report (python -m ws3d_jax.bench.sparse_conv --render report.json)."""
  dev = report['device']
  lines = [f"Machine: {dev.get('cpu_model', '?')}, {dev.get('sched_cpus', dev.get('cpu_count'))} cores, backend "
           f"{dev['backend']}, jax {dev['jax']}, torch {dev.get('torch')}, GLIBC_TUNABLES="
           f"'{dev.get('glibc_tunables', '')}'; total {report['total_wall_s']} s.", '']
  for section in (_layers, _updown, _profile, _by_level, _networks):
    lines += section(report)
  lines += [f"- {w['name']}: {w['status']}: {w.get('message')}" for w in report['workloads']
            if w.get('status') != 'ok']
  return '\n'.join(lines)


def _layers(report: dict) -> list:
  subm = _ok(report, lambda name: name.startswith('subm_c'))
  if not subm:
    return []
  w0 = subm[0]
  chunk = next((w['pair_chunks']['chunk'] for w in subm if 'pair_chunks' in w), None)
  rows = []
  for w in subm:
    tmp = w.get('xla_temp_mb') or {}
    rows.append(f"| {w['channels']['in']} | {w['dataflow']} | {_mp(w['forward'])} | {_mp(w['forward_backward'])} | "
                f"{_ms(w.get('kernel_map_build'))} | {w['useful_gflops_per_s']['forward']} / "
                f"{w['useful_gflops_per_s']['forward_backward']} | {w['peak_rss_mb']} | "
                f"{tmp.get('forward', '-')} / {tmp.get('forward_backward', '-')} | {_errors(w)} | "
                f"{_compiles(w)} |")
  return _table(f"One submanifold 3x3x3 layer, {w0['scene']} ({w0['voxels']} voxels, {w0['side_pairs']} side "
                f"pairs, {w0['neighbours_per_voxel']} neighbours/voxel incl. centre; capacity "
                f"{w0['capacity_voxels']}" + (f"; 'pairs' chunk {chunk}" if chunk else '') + ')',
                'C | dataflow | fwd median / p90 ms | fwd+bwd median / p90 ms | kernel map ms | '
                'useful GFLOP/s fwd / fwd+bwd | peak RSS MB | XLA temp MB fwd / fwd+bwd | '
                'max abs err fwd / dx / dW (crop) | compiles', rows) + _layer_peer(report)


def _layer_peer(report: dict) -> list:
  ws = {w['name']: w for w in report['workloads']}
  rows = []
  for c in report['config']['channels']:
    wp, wd = ws.get(f'subm_c{c}_pairs'), ws.get(f'subm_c{c}_dense')
    peer = (wp or wd or {}).get('peer_torch', {})
    rp = (wp or {}).get('ratio_ours_over_peer', {})
    rd = (wd or {}).get('ratio_ours_over_peer', {})
    best = min([r['forward_backward'] for r in (rp, rd) if r] or [float('nan')])
    met = 'met' if best <= 1.0 else ('NOT met' if best == best else '-')
    notes = PERF_NOTES_PEER.get(c)
    rows.append(f"| {c} | {_ms(peer.get('forward'))} | {_ms(peer.get('forward_backward'))} | "
                f"{rp.get('forward', '-')} / {rp.get('forward_backward', '-')} | "
                f"{rd.get('forward', '-')} / {rd.get('forward_backward', '-')} | {met} (best {best}) | "
                f"{'%s / %s' % notes if notes else '-'} |")
  return _table('Peer: PyTorch eager on the same neighbour map (ratio = ours / peer; <= 1.0 means ours is as fast)',
                'C | peer fwd ms | peer fwd+bwd ms | pairs ratio fwd / fwd+bwd | dense ratio fwd / fwd+bwd | '
                'target (a) fwd+bwd <= 1.0 | PERF_NOTES peer fwd / fwd+bwd', rows,
                intro='Ratios from interleaved rounds (ours, peer, ours, ...: both see the same load); peer times '
                      'are its own timing block.')


def _updown(report: dict) -> list:
  updown = _ok(report, lambda name: name.split('_')[0] in ('strided', 'transposed'))
  rows = [f"| {w['name'].split('_')[0]} | {w['channels']['in']} | {w['voxels']} / {w['coarse_voxels']} | "
          f"{_mp(w['forward'])} | {_mp(w['forward_backward'])} | {_ms(w.get('kernel_map_build'))} | "
          f"{w['useful_gflops_per_s']['forward']} | {w['peak_rss_mb']} | {_errors(w)} |" for w in updown]
  return _table('Strided 2x2x2 and transposed layers',
                'layer | C | fine / coarse voxels | fwd median / p90 ms | fwd+bwd median / p90 ms | '
                'kernel map ms | useful GFLOP/s fwd | peak RSS MB | max abs err fwd / dx / dW (crop)',
                rows) if updown else []


def _profile(report: dict) -> list:
  prof = _ok(report, lambda name: name.startswith('profile_pairs'))
  if not prof:
    return []
  width = lambda w: w['name'].rsplit('c', 1)[1]
  steps = [f'| {k} | ' + ' | '.join(f"{w['steps_ms'][k]:.1f}" for w in prof) + ' |' for k in prof[0]['steps_ms']]
  sweep = [f"| {width(w)} | {ch} | {v['chunks']} | {v['forward_ms']:.1f} | {v['forward_backward_ms']:.1f} | "
           f"{v['scan_prototype_forward_ms']:.1f} |" for w in prof for ch, v in w['chunk_sweep'].items()]
  return (_table("Where the 'pairs' time goes (each step its own jit; ms)",
                 ' | '.join(['step'] + [f"C={width(w)} (chunk {w['chunk']})" for w in prof]), steps)
          + _head('C | chunk | chunks | fwd ms | fwd+bwd ms | scan-over-chunks prototype fwd ms') + sweep + [''])


def _by_level(report: dict) -> list:
  ws = {w['name']: w for w in report['workloads']}
  lvl = _ok(report, lambda name: name.startswith('subm_level'))
  rows = []
  for w in lvl:
    d = ws.get(w['name'].replace('_pairs_', '_dense_'), {})
    if w['dataflow'] != 'pairs' or d.get('status') != 'ok':
      continue
    fp, fd = w['forward_backward']['median_ms'], d['forward_backward']['median_ms']
    rows.append(f"| {w['scene']} | {w['level']} ({w['stride']}) | {w['voxels']} | {w['neighbours_per_voxel']} | "
                f"{w['channels']['in']} | {_ms(w['forward'])} / {_ms(w['forward_backward'])} | "
                f"{_ms(d['forward'])} / {_ms(d['forward_backward'])} | "
                f"{'pairs' if fp <= fd else 'dense'} ({max(fp, fd) / min(fp, fd):.2f}x) |")
  return _table('One submanifold layer per stride (MinkUNet pyramid; width of the encoder at that level)',
                'scene | level (stride) | voxels | neighbours/voxel | C | pairs fwd / fwd+bwd ms | '
                'dense fwd / fwd+bwd ms | faster fwd+bwd', rows) if lvl else []


def _networks(report: dict) -> list:
  nets = _ok(report, lambda name: name.startswith('minkunet'))
  if not nets:
    return []
  rows = []
  for w in nets:
    ts = w.get('train_step')
    gs = w['useful_gflops_per_s']
    rows.append(f"| {w['name']} | {w['voxels']} ({', '.join(map(str, w['voxels_per_level']))}) | "
                f"{_ms(w['kernel_map_build'])} | {_mp(w['forward'])} | {_mp(ts)} | {w['useful_gflop']['forward']} | "
                f"{gs['forward']} / {gs.get('train_step', '-')} | {_ms(w['forward'], 'first_call_ms')} / "
                f"{_ms(ts, 'first_call_ms')} | {w['peak_rss_mb']} | {_compiles(w)} |")
  lines = _table('MinkUNet', 'network / scene | voxels (per level) | kernel maps ms | fwd median / p90 ms | '
                 'train step median / p90 ms | useful GFLOP fwd | useful GFLOP/s fwd / step | '
                 'first call ms fwd / step | peak RSS MB | compiles', rows)
  peers = [w for w in nets if 'forward' in w.get('peer_torch', {})]
  if not peers:
    return lines
  lines += ['Peer: the same network in PyTorch eager, same maps and parameters (ratio = ours / peer from '
            'interleaved rounds, [min, max] over the rounds):', '']
  lines += _head('network / scene | logits max abs diff (of max) | peer fwd ms | peer step ms | ratio fwd | '
                 'ratio step')
  for w in peers:
    pt, r = w['peer_torch'], w['peer_torch'].get('ratio_ours_over_peer', {})
    spread = pt.get('interleaved', {}).get('ratio_spread', {})
    cell = lambda k: f"{r[k]} {spread.get(k, '')}" if k in r else '-'
    lines.append(f"| {w['name']} | {pt['parity']['logits_max_abs_diff']:.1e} ({pt['parity']['logits_max_abs']}) | "
                 f"{_ms(pt['forward'])} | {_ms(pt.get('train_step'))} | {cell('forward')} | {cell('train_step')} |")
  return lines + ['']


def _ok(report: dict, wanted) -> list:
  """The workloads that ran and whose name is wanted, in report order."""
  return [w for w in report['workloads'] if wanted(w['name']) and w.get('status') == 'ok']


def _table(title: str, columns: str, rows: list, intro: str | None = None) -> list:
  """A section: its title, an optional paragraph, a table of rows and a blank line."""
  return [f'### {title}', ''] + ([intro, ''] if intro else []) + _head(columns) + rows + ['']


def _head(columns: str) -> list:
  """A table's header row ('a | b | c') and its separator row."""
  return [f'| {columns} |', '|' + '---|' * (columns.count(' | ') + 1)]


def _json_default(o):
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  return str(o)

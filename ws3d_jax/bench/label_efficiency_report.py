"""The label-efficiency benchmark's report: the summary over seeds with the win rule, its markdown
tables with the paper's Tables 2, 3 and 5 beside ours, and the learning curves."""
from __future__ import annotations

from pathlib import Path

import numpy as np

ARMS = ('sup_only', 'ws3d')  # the pair the win rule compares

# The paper's val mIoU (ScanNet, S3DIS Area 5, SemanticKITTI): Table 2 with 100% of the labels
# (Sup-only-GPC and WS3D), Table 3 at 20% and 100% (inductive and transductive WS3D).
PAPER_DATASETS = ('ScanNet', 'S3DIS', 'SemanticKITTI')
PAPER_TABLE2 = {'sup_only': (72.9, 66.4, 65.0), 'ws3d': (76.9, 72.9, 66.9)}
PAPER_TABLE3 = {20: {'ws3d': (68.5, 65.7, 61.4), 'ws3d_transductive': (71.4, 66.6, 64.5)},
                100: {'ws3d': PAPER_TABLE2['ws3d'], 'ws3d_transductive': (77.6, 73.5, 68.2)}}


def summarize(runs: dict) -> dict:
  """{group: {ratio: {arm: {seeds, values, mean, std}, gain, wins, transductive_gain}}}: std is
  the sample standard deviation over seeds (ddof=1); gain is WS3D's over sup_only, and
  transductive_gain the transductive arm's over the inductive WS3D arm (paper Table 3)."""
  out = {}
  for r in runs.values():
    if r.get('case'):  # a Table 5 case is an ablation, not a seed: table5_markdown shows them
      continue
    arm = out.setdefault(r['group'], {}).setdefault(f"{r['ratio']}pct", {}).setdefault(r['arm'], {'seeds': [], 'values': []})
    arm['seeds'].append(r['seed'])
    arm['values'].append(r['metric'])
  for group in out.values():
    for ratio in group.values():
      for arm in ratio.values():
        if isinstance(arm, dict) and 'values' in arm:
          v = np.asarray(arm['values']) * 100
          arm['mean'] = float(v.mean())
          arm['std'] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
      if all(a in ratio for a in ARMS):
        ratio['gain'] = ratio['ws3d']['mean'] - ratio['sup_only']['mean']
        # Seed by seed (the arms of one seed share the split and the warm-up): what the mean hides.
        ratio['paired_gains'] = paired_gains(ratio['sup_only'], ratio['ws3d'])
        # The rule is judged on the same seeds in both arms, two at least (a std of one is 0);
        # until then the row says which seeds are in (a benchmark still running).
        if sorted(ratio['ws3d']['seeds']) == sorted(ratio['sup_only']['seeds']) and len(ratio['ws3d']['seeds']) > 1:
          ratio['wins'] = bool(ratio['gain'] >= 2 and
                               ratio['gain'] > 2 * max(ratio['ws3d']['std'], ratio['sup_only']['std']))
      if 'ws3d' in ratio and 'ws3d_transductive' in ratio:
        ratio['transductive_gain'] = ratio['ws3d_transductive']['mean'] - ratio['ws3d']['mean']
        ratio['transductive_paired_gains'] = paired_gains(ratio['ws3d'], ratio['ws3d_transductive'])
  return out


def paired_gains(base: dict, arm: dict) -> dict:
  """{seed: arm - base} in points, for the seeds both arms have."""
  by_seed = dict(zip(base['seeds'], base['values']))
  return {str(seed): 100 * (v - by_seed[seed]) for seed, v in sorted(zip(arm['seeds'], arm['values']))
          if seed in by_seed}


def markdown(report: dict) -> str:
  s = report['settings']
  lines = [f"# Label-efficiency benchmark (room seed {s['room_seed']})", '',
           f"{s['scale']['num_train']} training rooms, {s['scale']['num_val']} validation rooms, "
           f"{s['scale']['steps']} steps; val {s['metric']} in %, mean ± std over seeds.", '',
           f"Command: `{s['command']}`", '']
  for group, ratios in sorted(report.get('summary', {}).items()):
    lines += [f'## {group}', '', '| labels | sup_only | ws3d | gain | WS3D wins (>= 2 and > 2 std) | gain per seed |',
              '|---|---|---|---|---|---|']
    for ratio in by_ratio(ratios):
      row = ratios[ratio]
      gain = f"{row['gain']:+.1f}" if 'gain' in row else ''
      lines.append(f"| {ratio} | {arm_cell(row, 'sup_only')} | {arm_cell(row, 'ws3d')} | {gain} | {wins_cell(row)} | "
                   f"{gains_cell(row.get('paired_gains', {}))} |")
    lines.append('')
    if group == 'semantic':  # the paper's Table 2 is semantic segmentation
      lines += table2_markdown(ratios.get('100pct', {}))
    lines += table3_markdown(ratios, paper=PAPER_TABLE3 if group == 'semantic' else {})
  lines += table5_markdown(report['runs'])
  lines += ['## Runs', '', 'Load: the 1-minute load average at the start and end of the run, and the cores other '
            'processes used meanwhile; "SHARED" marks a run that did not have the machine to itself.', '',
            '| run | val | pseudo-label coverage | pseudo-label accuracy | boundary F1 | wall s | load |',
            '|---|---|---|---|---|---|---|']
  for key, r in sorted(report['runs'].items()):
    p, b = r.get('pseudo_labels', {}), r.get('boundary', {})
    lines.append(f"| {key} | {100 * r['metric']:.1f} | {p.get('coverage', float('nan')):.2f} | "
                 f"{p.get('confident_accuracy', float('nan')):.2f} | {b.get('f1', float('nan')):.2f} | "
                 f"{r.get('wall_seconds') or float('nan'):.0f} | {load_cell(r.get('load') or {})} |")
  return '\n'.join(lines) + '\n'


# Paper Table 5, 5% labels: ScanNet val mIoU, S3DIS mIoU, ScanNet instance AP@50, per case.
PAPER_TABLE5 = {1: (56.2, 54.6, 45.6), 2: (51.0, 49.3, 39.9), 3: (49.9, 47.2, 37.0), 4: (51.6, 52.1, 40.1),
                5: (51.1, 51.4, 40.7), 6: (52.5, 50.9, 42.2), 7: (49.3, 48.0, 38.1), 8: (54.3, 52.8, 42.9),
                9: (48.1, 45.0, 34.8)}
TABLE5_WHAT = {1: 'the full WS3D', 2: 'no boundary labels w_ij', 3: 'no pairwise energy term',
               4: 'no H_ij in the energy', 5: 'no H_ij in the contrast', 6: 'contrast at the last stage only',
               7: 'no region contrast', 8: 'no supervised cross-entropy branch', 9: 'supervised only'}


def by_ratio(ratios: dict) -> list:
  """'5pct', '10pct', ... in the order of their numbers."""
  return sorted(ratios, key=lambda r: int(r[:-3]))


def wins_cell(row: dict) -> str:
  if 'wins' in row:
    return 'yes' if row['wins'] else 'no'
  return f"pending (seeds {len(row['sup_only']['seeds'])} / {len(row['ws3d']['seeds'])})" if 'gain' in row else ''


def gains_cell(gains) -> str:
  """Signed points, one per seed (a dict of them) or per data set."""
  return ' / '.join(f'{g:+.1f}' for g in (gains.values() if isinstance(gains, dict) else gains))


def same_sign(ours: float, paper) -> str:
  return ' / '.join('yes' if np.sign(ours) == np.sign(p) else 'no' for p in paper)


def table2_markdown(row: dict) -> list:
  """WS3D against sup_only with every label, beside the paper's Table 2 (the unlabeled branch
  over the whole training set: the energy and the contrast as extra guidance)."""
  if 'gain' not in row:
    return []
  paper = [w - s for w, s in zip(PAPER_TABLE2['ws3d'], PAPER_TABLE2['sup_only'])]
  return ['Paper Table 2 (100% of the labels; paper gains are val mIoU, ' + ' / '.join(PAPER_DATASETS) + '):', '',
          '| sup_only | ws3d | gain | WS3D wins (>= 2 and > 2 std) | gain per seed | paper gain | same sign |',
          '|---|---|---|---|---|---|---|',
          f"| {arm_cell(row, 'sup_only')} | {arm_cell(row, 'ws3d')} | {row['gain']:+.1f} | {wins_cell(row)} | "
          f"{gains_cell(row['paired_gains'])} | {gains_cell(paper)} | "
          f"{same_sign(row['gain'], paper)} |", '']


def table3_markdown(ratios: dict, paper: dict) -> list:
  """Transductive (the validation rooms, unlabeled, join the unlabeled set) against inductive
  WS3D, beside ``paper`` (PAPER_TABLE3 for semantic segmentation; the paper has none for
  instances). A ratio whose inductive arm is not in yet shows no gain."""
  rows = [r for r in by_ratio(ratios) if 'ws3d_transductive' in ratios[r]]
  if not rows:
    return []
  lines = ['Paper Table 3: transductive WS3D (the validation rooms, unlabeled, join the unlabeled set) against '
           'inductive (paper gains are val mIoU, ' + ' / '.join(PAPER_DATASETS)
           + '):', '', '| labels | ws3d (inductive) | ws3d transductive | gain | gain per seed | paper gain | same sign |',
           '|---|---|---|---|---|---|---|']
  for ratio in rows:
    row = ratios[ratio]
    theirs = paper.get(int(ratio[:-3]))
    paper_gain = [t - i for t, i in zip(theirs['ws3d_transductive'], theirs['ws3d'])] if theirs else None
    gain = row.get('transductive_gain')
    lines.append(f"| {ratio} | {arm_cell(row, 'ws3d')} | {arm_cell(row, 'ws3d_transductive')} | "
                 f"{'' if gain is None else f'{gain:+.1f}'} | {gains_cell(row.get('transductive_paired_gains', {}))} | "
                 f"{gains_cell(paper_gain) if paper_gain else 'not in the paper'} | "
                 f"{same_sign(gain, paper_gain) if paper_gain and gain is not None else ''} |")
  return lines + ['']


def table5_markdown(runs: dict) -> list:
  """Each Table 5 case beside the paper's (ScanNet, 5%), as a change from case 1 (the full
  method), and whether the two changes have the same sign."""
  cases = {r['case']: 100 * r['metric'] for r in runs.values() if r.get('case')}
  if not cases:
    return []
  ratio = next(r['ratio'] for r in runs.values() if r.get('case'))
  full = [100 * r['metric'] for r in runs.values()
          if not r.get('case') and r['arm'] == 'ws3d' and r['ratio'] == ratio and r['group'] == 'semantic']
  spread = float(np.std(full, ddof=1)) if len(full) > 1 else None
  lines = ['## Table 5 (ablations; one seed)', '', 'Change from case 1 in mIoU points; the paper\'s is ScanNet val at '
           f'{ratio}%.' + (f' The full method\'s spread over {len(full)} seeds at this ratio is {spread:.1f} points: '
                           'with one seed, a smaller change is not told apart from the seed\'s luck.' if spread else ''),
           '', '| case | what | paper ScanNet / S3DIS | paper change | ours | our change | same sign | beyond the spread |',
           '|---|---|---|---|---|---|---|---|']
  for case in sorted(cases):
    scannet, s3dis, _ = PAPER_TABLE5[case]
    paper = scannet - PAPER_TABLE5[1][0]
    ours = cases[case] - cases[1] if 1 in cases else None
    same = '' if case == 1 or ours is None else same_sign(ours, [paper])
    beyond = '' if case == 1 or ours is None or spread is None else ('yes' if abs(ours) > spread else 'no')
    lines.append(f"| {case} | {TABLE5_WHAT[case]} | {scannet} / {s3dis} | {paper:+.1f} | {cases[case]:.1f} | "
                 f"{'' if ours is None else f'{ours:+.1f}'} | {same} | {beyond} |")
  return lines + ['']


def arm_cell(row: dict, arm: str) -> str:
  a = row.get(arm)
  return f"{a['mean']:.1f} ± {a['std']:.1f} (n={len(a['values'])})" if a else ''


def load_cell(load: dict) -> str:
  if not load:
    return 'not recorded'
  start, end = (load.get('load_average_start') or [None])[0], (load.get('load_average_end') or [None])[0]
  cell = f"{start} -> {end}, others {load.get('other_cores')} cores"
  return ('SHARED: ' + cell) if load.get('shared') else cell


def plot(report: dict, path: Path) -> None:
  import matplotlib  # noqa: PLC0415
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # noqa: PLC0415

  groups = sorted({(r['group'], r['ratio']) for r in report['runs'].values()})
  fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(5 * max(len(groups), 1), 4), squeeze=False)
  colours = {'sup_only': 'tab:blue', 'ws3d': 'tab:red'}
  for ax, (group, ratio) in zip(axes[0], groups):
    for key, r in sorted(report['runs'].items()):
      if (r['group'], r['ratio']) != (group, ratio) or not r['curve']:
        continue
      steps, values = zip(*r['curve'])
      ax.plot(steps, 100 * np.asarray(values), color=colours.get(r['arm'], 'tab:gray'), alpha=0.7,
              label=f"{r['arm']} seed {r['seed']}")
    ax.set_title(f'{group}, {ratio}% labels')
    ax.set_xlabel('step')
    ax.set_ylabel(f"val {report['settings']['metric']} (%)")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)

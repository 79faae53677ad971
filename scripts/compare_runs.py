"""Do two runs compute the same thing? Compares two workdirs of the same command (before and after
a change that should not change behaviour): the split file byte for byte, the boundary points,
every TensorBoard scalar both runs logged (losses, terms, gradient norm, learning rate, validation metrics; not timings), and the final metrics.

    python scripts/compare_runs.py runs/before runs/after

Prints one line per check and exits 1 if any differs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

# Tags renamed on purpose (old name: new name): issue 13 trains the boundary network through the
# shared loop, which writes every metric under the loop's prefix.
RENAMED = {'boundary/focal_loss': 'boundary/loss'}


def scalars(workdir: Path) -> dict:
  """{tag: {step: value}} of the run's TensorBoard scalars (the loss terms, not timings)."""
  acc = event_accumulator.EventAccumulator(str(workdir / 'tensorboard'), size_guidance={'tensors': 0})
  acc.Reload()
  out = {}
  for tag in acc.Tags()['tensors']:
    if 'per_second' in tag or tag.startswith(('scenes/', 'val/confusion')):
      continue
    values = {e.step: float(np.asarray(tensor_util.make_ndarray(e.tensor_proto)).ravel()[0])
              for e in acc.Tensors(tag) if e.tensor_proto.dtype != 7}  # 7: strings (mesh metadata)
    if values:
      out[RENAMED.get(tag, tag)] = values
  return out


def _how_far(x: dict, y: dict) -> str:
  """For a change that may move float rounding: the relative difference at the first logged step
  (one forward and backward pass, before any update has compounded it) and the largest over all."""
  steps = sorted(x.keys() & y.keys())
  rel = [abs(x[s] - y[s]) / max(abs(x[s]), abs(y[s]), 1e-12) for s in steps]
  return f'; relative difference {rel[0]:.1e} at step {steps[0]}, at most {max(rel):.1e}' if steps else ''


def main(before: str, after: str) -> int:
  a, b = Path(before), Path(after)
  checks = {'split.json identical': (a / 'split.json').read_bytes() == (b / 'split.json').read_bytes()}
  if (a / 'boundary' / 'points.npz').is_file():
    with np.load(a / 'boundary' / 'points.npz') as x, np.load(b / 'boundary' / 'points.npz') as y:
      checks['boundary points identical'] = set(x.files) == set(y.files) and all(
          np.array_equal(x[k], y[k]) for k in x.files)
  sa, sb = scalars(a), scalars(b)
  for tag in sorted(set(sa) | set(sb)):
    if tag in sa and tag in sb:
      same = sa.get(tag) == sb.get(tag)
      first = min(sa.get(tag, {0: None}))
      name = f'{tag} at every logged step (first: step {first} = {sa.get(tag, {}).get(first)})'
      checks[name + ('' if same else _how_far(sa[tag], sb[tag]))] = same
  ma, mb = (json.loads((d / 'eval' / 'metrics.json').read_text()) for d in (a, b))
  common = sorted(ma.keys() & mb.keys())
  checks[f'final metrics identical (step {ma["step"]}, mIoU {100 * ma["miou"]:.2f}; {len(common)} fields)'] = all(
      ma[k] == mb[k] for k in common)
  for only, run in ((sorted(ma.keys() - mb.keys()), before), (sorted(mb.keys() - ma.keys()), after)):
    if only:  # a field added (or removed) on purpose, e.g. diverged_at_step: said, not compared
      print(f'note  metrics.json fields only in {run}: {only}')
  for name, ok in checks.items():
    print(f'{"same" if ok else "DIFFERS"}  {name}')
  return 0 if all(checks.values()) else 1


if __name__ == '__main__':
  sys.exit(main(*sys.argv[1:]))

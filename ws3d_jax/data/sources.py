"""The scenes of one experiment: training and evaluation sources, the label split, and the
labeled and unlabeled branches as random-access sources.

    data = load_experiment(spec, workdir)   # spec: a DataSpec (the run builder makes it from config.data)
    data.labeled[i]     # a labeled (sub-)scene: labels, ground-truth boundaries
    data.unlabeled[i]   # an unlabeled (sub-)scene: labels hidden, predicted boundaries
    data.eval_scenes    # the evaluation scenes, whole

The split is written to <workdir>/split.json the first time and read back afterwards, so a
resumed run and its evaluation use exactly the scenes the first run used.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ws3d_jax import files
from ws3d_jax.data import build, datasets, splits
from ws3d_jax.data import labels as label_defs
from ws3d_jax.data.augment import AugmentParams
from ws3d_jax.data.pipeline import subset_scene
from ws3d_jax.sparse import keys

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What the data layer reads of a run: which data set, where, its evaluation scenes, the label
  split and the voxel size (the fields of ``config.data``, made once by the run builder)."""
  name: str
  data_dir: str = '~/tensorflow_datasets'
  manual_dir: str = ''
  eval_split: str = 'validation'
  holdout: str = ''  # scene id prefixes taken out of train and evaluated on instead
  skip_bad_scenes: bool = False
  label_ratio: float = 0.05
  split_seed: int = 0
  split_file: str = ''
  transductive: bool = False
  voxel_size: float = 0.05
  augment: AugmentParams = AugmentParams()
  # The generated rooms only: how many, how big, and their seed offset.
  num_train: int = 0
  num_val: int = 0
  points_per_scene: int = 0
  room_seed: int = 0


class Subset:
  """Random access to some scenes of a source, by index."""

  def __init__(self, source, indices: Sequence[int]):
    self.source, self.indices = source, list(indices)

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[self.indices[i]]


def entry_key(entry: Mapping) -> str:
  """Name of a split entry: the scene id, plus the side of the cut for a cut scene."""
  cut = entry.get('cut')
  return entry['scene'] if cut is None else f"{entry['scene']}@{cut['side']}"


class BranchSource:
  """The scenes of one branch of the split, as random-access scene dicts.

  Labeled entries keep their labels and ground-truth boundary points. Unlabeled entries lose
  every label (semantic -> ignore, instance -> 0); their boundary points are the boundary
  network's predictions (``boundary``: entry key -> bool per point) or, without predictions,
  none. Each scene gets 'pair_boundary', the w_ij of METHOD.md: 1 where both adjacent regions
  hold boundary points.
  """

  def __init__(self, entries: Sequence[Mapping], lookup: Mapping[str, tuple], labeled: bool,
               boundary: Mapping[str, np.ndarray] | None = None, labeled_scenes: Sequence[str] = ()):
    self.entries, self.lookup, self.labeled = list(entries), lookup, labeled
    self.boundary = boundary
    # At ratio 1 every scene is in both branches; its ground-truth boundaries are known then.
    self.labeled_scenes = frozenset(labeled_scenes)

  def with_boundary(self, boundary: Mapping[str, np.ndarray]) -> 'BranchSource':
    """The same branch, with the boundary network's points (entry key -> bool per point)."""
    return BranchSource(self.entries, self.lookup, self.labeled, boundary, self.labeled_scenes)

  def __len__(self):
    return len(self.entries)

  def key(self, i: int) -> str:
    return entry_key(self.entries[i])

  def __getitem__(self, i: int) -> dict:
    entry = self.entries[i]
    source, index = self.lookup[entry['scene']]
    scene = source[index]
    if entry.get('cut') is not None:
      scene = subset_scene(scene, splits.apply_cut(scene['xyz'], entry['cut']))
    scene = dict(scene, scene_id=entry_key(entry), labeled=self.labeled)
    if not self.labeled:
      scene['semantic'] = np.full_like(scene['semantic'], label_defs.IGNORE_LABEL)
      scene['instance'] = np.zeros_like(scene['instance'])
      if entry['scene'] in self.labeled_scenes and entry.get('cut') is None:
        pass  # keeps the ground-truth boundary points
      elif self.boundary is not None:
        points = self.boundary.get(scene['scene_id'])
        if points is None or len(points) != len(scene['xyz']):
          raise ValueError(f'no predicted boundary points of the right length for {scene["scene_id"]}; '
                           'delete the boundary cache to recompute it')
        scene['boundary'] = points
      else:
        scene['boundary'] = np.zeros(len(scene['xyz']), bool)
    scene['pair_boundary'] = pair_boundary(scene['boundary'], scene['region_id'], scene['region_pairs'])
    return scene


def pair_boundary(boundary: np.ndarray, region_id: np.ndarray, pairs: np.ndarray) -> np.ndarray:
  """w_ij per adjacent pair: 1.0 when both regions contain a boundary point."""
  has = np.zeros(int(region_id.max()) + 1 if len(region_id) else 0, bool)
  has[region_id[np.asarray(boundary, bool)]] = True
  pairs = np.asarray(pairs).reshape(-1, 2)
  return (has[pairs[:, 0]] & has[pairs[:, 1]]).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Experiment:
  label_set: str  # key of labels.CLASSES
  class_names: tuple
  labeled: BranchSource
  unlabeled: BranchSource
  eval_scenes: object  # random-access source of whole evaluation scenes
  split: dict

  @property
  def fingerprint(self) -> str:
    """Identifies the split (which scenes, which cuts), for caches derived from it."""
    text = json.dumps({'labeled': self.split['labeled'], 'unlabeled': self.split['unlabeled']}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def load_sources(d: DataSpec) -> tuple:
  """(training source, evaluation source) of the data set, built on first use."""
  name = datasets.canonical_name(d.name)
  builder_config = {'skip_bad_scenes': True} if d.skip_bad_scenes else None
  if name == 'synthetic':
    builder_config = {'num_train': d.num_train, 'num_val': d.num_val, 'num_points': d.points_per_scene,
                      'room_seed': d.room_seed}
  elif not d.manual_dir and not build.is_built(name, d.data_dir):
    raise FileNotFoundError(
        f'{name} is not built in {d.data_dir}: pass its download with --config.data.manual_dir=DIR (built on '
        f'first use), DIR holding {datasets.get(name).layout};\nor point --config.data.data_dir at a built copy. '
        'README, "Data sets", says where to get it.')
  sources = build.load_or_build(name, d.data_dir, manual_dir=d.manual_dir or None, config=builder_config)
  train = sources.get('train')
  if train is None or not len(train):
    raise ValueError(f'{name} in {d.data_dir} has no training scenes')
  evaluation = sources.get(d.eval_split)
  holdout = [h for h in d.holdout.split(',') if h] if d.holdout else []
  if holdout:
    ids = [train[i]['scene_id'] for i in range(len(train))]
    out = [i for i, s in enumerate(ids) if any(s.startswith(h) for h in holdout)]
    if not out:
      raise ValueError(f'data.holdout={d.holdout!r} matches no training scene (ids look like {ids[0]!r})')
    if len(out) == len(ids):
      raise ValueError(f'data.holdout={d.holdout!r} holds out every training scene')
    evaluation = Subset(train, out)
    train = Subset(train, [i for i in range(len(ids)) if i not in set(out)])
    log.info('held out %d training scenes for evaluation: %s', len(out), [ids[i] for i in out])
  if evaluation is None or not len(evaluation):
    raise ValueError(f'{name} has no {d.eval_split!r} scenes to evaluate on: set --config.data.eval_split, or '
                     'hold out training scenes with --config.data.holdout=ID_PREFIX[,ID_PREFIX]')
  return train, evaluation


def load_experiment(spec: DataSpec, workdir: str | Path) -> Experiment:
  workdir = Path(workdir)
  train, evaluation = load_sources(spec)
  label_set = datasets.get(spec.name).label_set
  catalog = _scene_catalog(workdir / 'scenes.json', {'train': train, 'eval': evaluation})
  check_spans(catalog, spec)
  sources = {'train': train, 'eval': evaluation}
  lookup = {}
  for name, ids in catalog['ids'].items():
    for i, sid in enumerate(ids):
      lookup.setdefault(sid, (sources[name], i))
  split = _load_or_make_split(spec, workdir / 'split.json', catalog, lookup)
  whole = [e['scene'] for e in split['labeled'] if e.get('cut') is None]
  return Experiment(label_set=label_set, class_names=label_defs.CLASSES[label_set],
                    labeled=BranchSource(split['labeled'], lookup, labeled=True),
                    unlabeled=BranchSource(split['unlabeled'], lookup, labeled=False, labeled_scenes=whole),
                    eval_scenes=evaluation, split=split)


def check_spans(catalog: Mapping, spec: DataSpec) -> None:
  """Every scene fits the voxel keys at the run's voxel size, also rotated and scaled by the
  augmentation; else an error now, before anything trains, naming the scenes."""
  limit = keys.MAX_COORD * spec.voxel_size / (np.sqrt(2) * max(spec.augment.scale or (1.0,)))
  wide = [(sid, m) for name in catalog['ids'] for sid, m in zip(catalog['ids'][name], catalog['span'][name])
          if m > limit]
  if wide:
    names = ', '.join(f'{sid} ({m:.0f} m)' for sid, m in wide[:5])
    raise ValueError(f'{len(wide)} scene(s) span more than the {limit:.0f} m that data.voxel_size='
                     f'{spec.voxel_size} can index ({keys.MAX_COORD} voxels an axis, after rotation and '
                     f'scaling): {names}. A point far out of range? Check those scenes\' files, or raise '
                     'data.voxel_size.')


def _scene_catalog(path: Path, sources: Mapping) -> dict:
  """Scene ids and point counts of each source, read once (a pass over every scene) and kept
  in the workdir; checked against the sources' lengths when read back."""
  if path.is_file():
    catalog = json.loads(path.read_text())
    if 'span' in catalog and all(len(catalog['ids'].get(k, ())) == len(s) for k, s in sources.items()):
      return catalog
    log.warning('%s does not match the data set any more; listing the scenes again', path)
  catalog = {'ids': {}, 'points': {}, 'span': {}}
  for name, source in sources.items():
    ids, points, span = [], [], []
    for i in range(len(source)):
      scene = source[i]
      ids.append(scene['scene_id'])
      points.append(len(scene['xyz']))
      span.append(float(np.ptp(scene['xyz'], axis=0).max()) if len(scene['xyz']) else 0.0)
    catalog['ids'][name], catalog['points'][name], catalog['span'][name] = ids, points, span
  files.write_json(path, catalog, indent=None)
  return catalog


def _load_or_make_split(d: DataSpec, path: Path, catalog: Mapping, lookup: Mapping) -> dict:
  if path.is_file():
    split = splits.load_split(path)
    if abs(split['ratio'] - d.label_ratio) > 1e-12 or split['seed'] != d.split_seed:
      raise ValueError(f'{path} holds the split of ratio {split["ratio"]} seed {split["seed"]}, but the config '
                       f'asks for ratio {d.label_ratio} seed {d.split_seed}; use another workdir')
    return split
  if d.split_file:
    split = splits.load_split(d.split_file)
    unknown = [e['scene'] for e in split['labeled'] + split['unlabeled'] if e['scene'] not in lookup]
    if unknown:
      raise ValueError(f'{d.split_file}: scenes not in the data set: {unknown[:5]}')
  else:
    counts = dict(zip(catalog['ids']['train'], catalog['points']['train']))
    transductive = list(catalog['ids']['eval']) if d.transductive else []
    xyz = lambda sid: lookup[sid][0][lookup[sid][1]]['xyz']
    split = splits.make_split(counts, d.label_ratio, d.split_seed, scene_xyz=xyz,
                              transductive_scenes=transductive)
  path.parent.mkdir(parents=True, exist_ok=True)
  splits.save_split(split, path)
  log.info('label split: %d labeled and %d unlabeled (sub-)scenes, %.2f%% of the points labeled (target %.2f%%)',
           len(split['labeled']), len(split['unlabeled']), 100 * split['achieved_ratio'], 100 * split['ratio'])
  return split

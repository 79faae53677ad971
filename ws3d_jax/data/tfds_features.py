"""What the TFDS builders in ``tfds_builders/`` share: the feature spec, the scene -> example
conversion (with the per-scene preprocessing of METHOD.md), the builder config and a base
builder. Each builder only lists its scenes and says how to read one.

Every example (one scene; key = scene id):

    scene_id      Text                       e.g. '08_000123', 'scene0000_00', 'Area_5_office_1'
    xyz           float32 (N, 3)             metres
    features      float32 (N, F)             remission (F = 1) or rgb in 0..1 (F = 3)
    semantic      int32 (N,)                 training ids 0..C-1, IGNORE_LABEL = 255
    instance      int32 (N,)                 1..K, 0 = no instance
    normals       float32 (N, 3)             unit length, sign arbitrary
    curvature     float32 (N,)
    region_id     int32 (N,)                 contiguous 0..Q-1, every point in one region
    region_pairs  int32 (E, 2)               adjacent regions, i < j, sorted
    boundary      bool (N,)                  ground-truth boundary points; all False when the
                                             scene has no labels

Arrays are stored as raw bytes (``tfds.features.Encoding.BYTES``): no int64 upcasting and no
per-element protobuf lists, decoded by numpy alone. array_record compresses its records
itself, so zlib on top saved only 2% of the file size and doubled the read time
(tfds_builders/README.md has the measurements). The data are written as
array_record and read with ``builder.as_data_source()`` / ``tfds.data_source`` (grain's random
access), which does not import TensorFlow.

Bad input. Readers raise ValueError naming the file and the problem (MissingFileError, also a
ValueError, for a missing file). By default the builder stops on the first bad scene with a
``BadSceneError`` naming the scene and that message; TFDS wrote nothing but an ``.incomplete``
temporary directory, which it deletes, so no half-written data set is left behind. With
``skip_bad_scenes=True`` (a config field) a bad scene is skipped instead: each skip is logged
(WARNING, with the reason), counted (the Beam counter ``ws3d/skipped_scenes`` in a Beam build)
and the total is written to the data set's metadata (``skipped_scenes``).
"""
from __future__ import annotations

import abc
import dataclasses
import functools
import inspect
import logging
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from ws3d_jax.data.labels import CLASSES, IGNORE_LABEL

log = logging.getLogger(__name__)

VERSION = tfds.core.Version('1.0.0')
RELEASE_NOTES = {
    '1.0.0': 'Initial release: scene_id, xyz, features, semantic (training ids, 255 = ignore), '
             'instance, normals, curvature, region_id, region_pairs, boundary; array_record.',
}
ENCODING = tfds.features.Encoding.BYTES
SPLITS = ('train', 'validation', 'test')
# Split-list file names in manual_dir: <prefix>_<suffix>.txt, e.g. scannetv2_val.txt.
SPLIT_FILE_SUFFIX = {'train': 'train', 'validation': 'val', 'test': 'test'}
FILE_FORMAT = 'array_record'
BEAM_COUNTER_NAMESPACE = 'ws3d'
SKIPPED_COUNTER = 'skipped_scenes'

# A scene task: (scene id, a picklable zero-argument reader returning the scene dict).
SceneTask = tuple  # tuple[str, Callable[[], dict]]


class BadSceneError(ValueError):
  """A scene could not be read or preprocessed; the message names the scene and the cause."""


# --------------------------------------------------------------------------------------------
# Feature spec and conversion.

def features_dict(num_features: int, feature_doc: str = '') -> tfds.features.FeaturesDict:
  """The feature spec of every builder (only the width of `features` differs)."""
  t = functools.partial(tfds.features.Tensor, encoding=ENCODING)
  return tfds.features.FeaturesDict({
      'scene_id': tfds.features.Text(doc='scene id (also the example key)'),
      'xyz': t(shape=(None, 3), dtype=np.float32, doc='point coordinates in metres'),
      'features': t(shape=(None, num_features), dtype=np.float32, doc=feature_doc),
      'semantic': t(shape=(None,), dtype=np.int32,
                    doc=f'training ids 0..C-1; {IGNORE_LABEL} = ignore'),
      'instance': t(shape=(None,), dtype=np.int32, doc='instance ids 1..K; 0 = none'),
      'normals': t(shape=(None, 3), dtype=np.float32, doc='unit normals, sign arbitrary'),
      'curvature': t(shape=(None,), dtype=np.float32, doc='l0 / (l0 + l1 + l2)'),
      'region_id': t(shape=(None,), dtype=np.int32, doc='oversegmentation, 0..Q-1'),
      'region_pairs': t(shape=(None, 2), dtype=np.int32, doc='adjacent regions, i < j'),
      'boundary': t(shape=(None,), dtype=np.bool_,
                    doc='ground-truth boundary points; all False without labels'),
  })


def _preprocess(xyz, labels, features, params):
  # Imported here: the reading side of the data sets never needs the geometry code.
  from ws3d_jax.geometry.preprocess import preprocess_scene
  kwargs = {}
  if 'features' in inspect.signature(preprocess_scene).parameters:
    kwargs['features'] = features
  return preprocess_scene(xyz, labels, ignore_label=IGNORE_LABEL, params=params, **kwargs)


def scene_to_example(scene: Mapping, params, feature_raw_scale: float = 1.0) -> dict:
  """A reader's scene dict -> a TFDS example (numpy arrays), with its preprocessing.

  `params` is anything preprocess_scene accepts (a DATASET_PARAMS name, a PreprocessParams or
  a dict of fields). preprocess_scene takes features in the data set's raw units (RGB 0..255,
  remission 0..1) while the readers give RGB in 0..1: features * feature_raw_scale are passed
  (255 for RGB, 1 for remission); the stored features stay the reader's. The ground-truth
  boundary is computed when the scene has any labelled point; otherwise it is all False.
  """
  xyz = np.ascontiguousarray(scene['xyz'], np.float32)
  n = len(xyz)
  semantic = np.asarray(scene['semantic'], np.int32)
  features = np.asarray(scene['features'], np.float32).reshape(n, -1)
  labelled = bool((semantic != IGNORE_LABEL).any())
  pre = _preprocess(xyz, semantic if labelled else None,
                    features * np.float32(feature_raw_scale), params)
  boundary = pre['boundary'] if labelled else np.zeros(n, bool)
  example = {
      'scene_id': str(scene['scene_id']),
      'xyz': xyz,
      'features': np.ascontiguousarray(features),
      'semantic': np.ascontiguousarray(semantic),
      'instance': np.ascontiguousarray(scene['instance'], np.int32),
      'normals': np.ascontiguousarray(pre['normals'], np.float32),
      'curvature': np.ascontiguousarray(pre['curvature'], np.float32),
      'region_id': np.ascontiguousarray(pre['region_id'], np.int32),
      'region_pairs': np.ascontiguousarray(pre['region_pairs'], np.int32).reshape(-1, 2),
      'boundary': np.ascontiguousarray(boundary, bool),
  }
  check_example(example)
  return example


def check_example(ex: Mapping) -> None:
  """Raises ValueError unless an example (written or read back) keeps the invariants."""
  sid = ex['scene_id']
  sid = sid.decode() if isinstance(sid, bytes) else str(sid)
  n = len(ex['xyz'])
  want = {'xyz': (np.float32, (n, 3)), 'features': (np.float32, None),
          'semantic': (np.int32, (n,)), 'instance': (np.int32, (n,)),
          'normals': (np.float32, (n, 3)), 'curvature': (np.float32, (n,)),
          'region_id': (np.int32, (n,)), 'region_pairs': (np.int32, None),
          'boundary': (np.bool_, (n,))}
  for key, (dtype, shape) in want.items():
    a = np.asarray(ex[key])
    if a.dtype != dtype:
      raise ValueError(f'{sid}: {key} has dtype {a.dtype}, want {np.dtype(dtype)}')
    if shape is not None and a.shape != shape:
      raise ValueError(f'{sid}: {key} has shape {a.shape}, want {shape}')
  if ex['features'].ndim != 2 or len(ex['features']) != n:
    raise ValueError(f'{sid}: features has shape {ex["features"].shape}, want ({n}, F)')
  if n == 0:
    raise ValueError(f'{sid}: empty scene')
  region = ex['region_id']
  q = int(region.max()) + 1
  if region.min() < 0 or (np.bincount(region, minlength=q) == 0).any():
    raise ValueError(f'{sid}: region ids are not contiguous 0..{q - 1}')
  pairs = ex['region_pairs']
  if pairs.ndim != 2 or pairs.shape[1] != 2:
    raise ValueError(f'{sid}: region_pairs has shape {pairs.shape}, want (E, 2)')
  if len(pairs) and (pairs.min() < 0 or pairs.max() >= q or (pairs[:, 0] >= pairs[:, 1]).any()):
    raise ValueError(f'{sid}: region_pairs must hold region ids i < j in 0..{q - 1}')
  semantic = ex['semantic']
  if not (semantic != IGNORE_LABEL).any() and ex['boundary'].any():
    raise ValueError(f'{sid}: boundary points in a scene without labels')


def grid_subsample(scene: Mapping, voxel: float) -> dict:
  """Keeps the first point (in file order) of every occupied voxel of edge `voxel` metres."""
  if voxel <= 0:
    return dict(scene)
  keys = np.floor(np.asarray(scene['xyz'], np.float64) / voxel).astype(np.int64)
  _, first = np.unique(keys, axis=0, return_index=True)
  keep = np.sort(first)
  n = len(scene['xyz'])
  return {k: (v[keep] if isinstance(v, np.ndarray) and v.ndim and len(v) == n else v)
          for k, v in scene.items()}


def convert_scene(task: SceneTask, params, skip_bad_scenes: bool = False,
                  subsample_voxel: float = 0.0, beam_counter: bool = False,
                  feature_raw_scale: float = 1.0) -> list:
  """[(key, example)] of one scene task, or [] when the scene is bad and skipped.

  Module level (not a builder method) so that a Beam worker can unpickle it.
  """
  scene_id, read = task
  try:
    scene = read()
    if subsample_voxel > 0:
      scene = grid_subsample(scene, subsample_voxel)
    if scene['scene_id'] != scene_id:
      raise ValueError(f'reader returned scene {scene["scene_id"]!r}')
    example = scene_to_example(scene, params, feature_raw_scale)
  except (ValueError, OSError) as e:  # MissingFileError is both
    reason = f'{type(e).__name__}: {e}'
    if not skip_bad_scenes:
      raise BadSceneError(f'scene {scene_id}: {reason}\nFix or remove it, or skip bad scenes (each one logged and '
                          'counted): --config.data.skip_bad_scenes=true, or the builder config skip_bad_scenes=True '
                          'of `tfds build`') from e
    log.warning('skipping bad scene %s: %s', scene_id, reason)
    if beam_counter:
      beam = tfds.core.lazy_imports.apache_beam
      beam.metrics.Metrics.counter(BEAM_COUNTER_NAMESPACE, SKIPPED_COUNTER).inc()
    return []
  return [(scene_id, example)]


# --------------------------------------------------------------------------------------------
# Split lists in manual_dir.

def split_file_name(prefix: str, split: str) -> str:
  return f'{prefix}_{SPLIT_FILE_SUFFIX[split]}.txt'


def read_list(path: str | os.PathLike) -> list[str]:
  """Non-empty, non-comment lines of a split list; an empty list raises ValueError."""
  path = Path(path)
  names = [line.split('#', 1)[0].strip() for line in path.read_text().splitlines()]
  names = [n for n in names if n]
  if not names:
    raise ValueError(f'{path}: empty split list')
  return names


def override_lists(manual_dir: Path | None, prefix: str) -> dict[str, list[str]]:
  """{split: entries} of the split lists <prefix>_{train,val,test}.txt found in manual_dir."""
  if manual_dir is None:
    return {}
  out = {}
  for split in SPLITS:
    path = Path(manual_dir) / split_file_name(prefix, split)
    if path.is_file():
      out[split] = read_list(path)
      log.info('%s split from %s (%d entries)', split, path, len(out[split]))
  return out


# --------------------------------------------------------------------------------------------
# Builder config and base builder.

@dataclasses.dataclass(eq=False)
class SceneConfig(tfds.core.BuilderConfig):
  """Config of every scene builder.

  skip_bad_scenes: skip (log and count) scenes that fail to read or preprocess instead of
    stopping the build.
  subsample_voxel: metres; > 0 keeps one point per voxel before preprocessing (0: every point).
  preprocess: PreprocessParams field overrides (a dict) on top of the data set's
    DATASET_PARAMS entry; stored in the data set's metadata.
  """
  skip_bad_scenes: bool = False
  subsample_voxel: float = 0.0
  preprocess: dict = dataclasses.field(default_factory=dict)


class SceneBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the scene builders; subclasses set the class attributes and `_scene_tasks`.

  Beam: a build runs as an Apache Beam pipeline when its DownloadConfig has a `beam_runner`
  or `beam_options` (`tfds build ... --beam_pipeline_options=...`, or
  `load_or_build(..., beam=True)`); otherwise scenes are converted in this process.
  """
  VERSION = VERSION
  RELEASE_NOTES = RELEASE_NOTES
  DATASET: str = ''            # key of geometry.preprocess.DATASET_PARAMS
  LABELS: str = ''             # key of labels.CLASSES
  NUM_FEATURES: int = 3
  FEATURE_DOC: str = 'rgb in 0..1'
  FEATURE_RAW_SCALE: float = 255.0  # stored features * this = preprocess_scene's raw units
  HOMEPAGE: str = ''
  CITATION: str = ''

  def __init__(self, *, file_format=None, **kwargs):
    super().__init__(file_format=file_format or FILE_FORMAT, **kwargs)
    self._use_beam = False
    self._skipped: list[str] = []
    self._skipped_beam = 0

  # -- to implement ---------------------------------------------------------------------
  @abc.abstractmethod
  def _scene_tasks(self, manual_dir: Path | None) -> dict[str, list[SceneTask]]:
    """{split: [(scene id, reader)]}, scene ids sorted; empty splits are left out."""

  # -- TFDS hooks -----------------------------------------------------------------------
  def preprocess_params(self):
    """The data set's DATASET_PARAMS entry with the config's overrides."""
    from ws3d_jax.geometry.preprocess import default_params, resolve_params
    params = default_params(self.DATASET)
    overrides = dict(getattr(self.builder_config, 'preprocess', None) or {})
    # resolve_params raises ValueError naming unknown fields.
    return resolve_params({**dataclasses.asdict(params), **overrides}) if overrides else params

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    metadata = tfds.core.MetadataDict(
        classes=list(CLASSES[self.LABELS]),
        ignore_label=IGNORE_LABEL,
        feature_doc=self.FEATURE_DOC,
        feature_raw_scale=self.FEATURE_RAW_SCALE,  # features * this went to preprocess_scene
        preprocess=dataclasses.asdict(self.preprocess_params()),
        skip_bad_scenes=bool(getattr(config, 'skip_bad_scenes', False)),
        subsample_voxel=float(getattr(config, 'subsample_voxel', 0.0)),
        skipped_scenes=0,
    )
    return self.dataset_info_from_configs(
        features=features_dict(self.NUM_FEATURES, self.FEATURE_DOC),
        supervised_keys=None,
        homepage=self.HOMEPAGE or None,
        citation=self.CITATION or None,
        metadata=metadata,
    )

  def _manual_dir(self, dl_manager) -> Path | None:
    if not self.MANUAL_DOWNLOAD_INSTRUCTIONS:
      return None
    return Path(os.fspath(dl_manager.manual_dir))

  def _split_generators(self, dl_manager):
    manual_dir = self._manual_dir(dl_manager)
    tasks = {s: t for s, t in self._scene_tasks(manual_dir).items() if t}
    if not tasks:
      raise ValueError(f'{self.name}: no scenes found in {manual_dir} '
                       f'(see the manual download instructions: tfds_builders/README.md)')
    for split, t in tasks.items():
      log.info('%s: %s split, %d scenes', self.name, split, len(t))
    return {split: self._generate_examples(t) for split, t in tasks.items()}

  def _generate_examples(self, tasks: Sequence[SceneTask]):
    config = self.builder_config
    convert = functools.partial(
        convert_scene, params=self.preprocess_params(),
        skip_bad_scenes=bool(getattr(config, 'skip_bad_scenes', False)),
        subsample_voxel=float(getattr(config, 'subsample_voxel', 0.0)),
        beam_counter=self._use_beam, feature_raw_scale=self.FEATURE_RAW_SCALE)
    if self._use_beam:
      beam = tfds.core.lazy_imports.apache_beam
      # Reshuffle spreads the scenes over the workers (Create makes one bundle).
      return (beam.Create(list(tasks)) | 'Reshuffle' >> beam.Reshuffle()
              | 'ConvertScenes' >> beam.FlatMap(convert))
    return self._generate_local(tasks, convert)

  def _generate_local(self, tasks, convert):
    for task in tasks:
      out = convert(task)
      if not out:
        self._skipped.append(task[0])
      yield from out

  def _process_pipeline_result(self, pipeline_result) -> None:
    beam = tfds.core.lazy_imports.apache_beam
    query = pipeline_result.metrics().query(beam.metrics.MetricsFilter().with_name(
        SKIPPED_COUNTER).with_namespace(BEAM_COUNTER_NAMESPACE))
    self._skipped_beam = sum(int(c.committed or c.attempted or 0) for c in query['counters'])

  def _download_and_prepare(self, dl_manager, download_config) -> None:
    self._use_beam = (download_config.beam_runner is not None
                      or download_config.beam_options is not None)
    self._skipped, self._skipped_beam = [], 0
    super()._download_and_prepare(dl_manager, download_config)
    skipped = len(self._skipped) + self._skipped_beam
    self.info.metadata['skipped_scenes'] = skipped
    if skipped:
      log.warning('%s: skipped %d bad scenes%s', self.name, skipped,
                  f': {", ".join(self._skipped[:20])}' if self._skipped else
                  ' (see the worker logs for which)')


def task(scene_id: str, reader: Callable[..., dict], *args, **kwargs) -> SceneTask:
  """A picklable scene task: reader(*args, **kwargs) is called when the scene is converted."""
  return (scene_id, functools.partial(reader, *args, **kwargs))

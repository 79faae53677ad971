"""Build-on-first-use of the TFDS data sets of tfds_builders/, and random-access reading.

    from ws3d_jax.data.build import load_or_build
    sources = load_or_build('semantic_kitti', data_dir='~/tensorflow_datasets',
                            manual_dir='/data/SemanticKITTI')
    sources['train'][0]   # a scene dict: scene_id (str), xyz, features, semantic, instance,
                          # normals, curvature, region_id, region_pairs, boundary

When the data set (name / config / version 1.0.0) is complete under data_dir it is read
directly; otherwise it is built from manual_dir first (synthetic needs none), in this process
or, with beam=True, as an Apache Beam pipeline (Beam's in-process FnApiRunner, which is what the
DirectRunner runs batch pipelines on, unless beam_options / beam_runner name another). TFDS writes into a temporary `*.incomplete*` folder and renames it only when
every split is written, so a failed or interrupted build never looks complete: the next call
builds again. Reading uses array_record data sources and does not import TensorFlow.

The same data sets build from the command line:
    tfds build tfds_builders/semantic_kitti --manual_dir=DIR --data_dir=OUT
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Mapping

from ws3d_jax import files, progress
from ws3d_jax.data import datasets

log = logging.getLogger(__name__)

LOCAL_BEAM_RUNNER = 'FnApiRunner'


def builder_class(name: str):
  """The builder class of a data set (imported without adding it to TFDS's registry, so that
  it never collides with the same module loaded by `tfds build`)."""
  import tensorflow_datasets as tfds
  module_name = datasets.get(name).builder
  with tfds.core.registered.skip_registration():
    module = importlib.import_module(module_name)
  return module.Builder


def _config_name(fields: Mapping[str, Any]) -> str:
  # {'skip_bad_scenes': True, 'subsample_voxel': 0.02} -> 'skip_bad_scenes_subsample_voxel0.02'
  parts = [k if v is True else f'{k}{v}' for k, v in sorted(fields.items())]
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', '_'.join(parts)) or 'default'


def make_config(name: str, config: Any = None):
  """A BuilderConfig (or a registered config's name) from config:

  None -> the default config; a str -> that registered config; a BuilderConfig -> itself;
  a dict of config fields -> a custom config ('name' optional: derived from the fields, so
  each variant gets its own folder). For synthetic, a dict of num_train / num_val /
  num_points names the folder by the sizes (train4_val2_pts8000) and the default sizes give
  the registered 'default'.
  """
  name = datasets.canonical_name(name)
  if config is None or isinstance(config, str) or not isinstance(config, Mapping):
    return config
  fields = dict(config)
  cls = builder_class(name)
  if name == 'synthetic' and 'name' not in fields:
    module = importlib.import_module(datasets.get(name).builder)
    return module.make_config(**fields)
  config_cls = type(cls.BUILDER_CONFIGS[0])
  known = {f.name for f in dataclasses.fields(config_cls)}
  unknown = sorted(set(fields) - known)
  if unknown:
    raise ValueError(f'unknown {name} config fields {unknown}; known: {sorted(known)}')
  cfg_name = fields.pop('name', None) or _config_name(fields)
  return config_cls(name=cfg_name, **fields)


def make_builder(name: str, data_dir: str | os.PathLike, config: Any = None):
  return builder_class(name)(data_dir=os.fspath(Path(data_dir).expanduser()),
                             config=make_config(name, config))


def is_built(name: str, data_dir: str | os.PathLike, config: Any = None) -> bool:
  """True when the data set is complete under data_dir (never for a failed build's leftovers)."""
  return make_builder(name, data_dir, config).is_prepared()


class SceneSource:
  """Random-access source of scene dicts over a TFDS data source (len, [i]); scene_id is a
  str (TFDS returns bytes). Picklable, so grain worker processes can use it."""

  def __init__(self, source):
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index: int) -> dict:
    return _decode(self.source[index])

  def __iter__(self):
    return (self[i] for i in range(len(self)))

  def __getitems__(self, indices) -> list[dict]:
    if hasattr(self.source, '__getitems__'):
      return [_decode(e) for e in self.source.__getitems__(indices)]
    return [self[i] for i in indices]

  def __repr__(self) -> str:
    return f'SceneSource({self.source!r})'


def _decode(example: dict) -> dict:
  out = dict(example)
  sid = out.get('scene_id')
  if isinstance(sid, bytes):
    out['scene_id'] = sid.decode('utf-8')
  return out


def read_built(data_path: str | os.PathLike, raw: bool = False) -> dict:
  """{split: source} of a complete data set folder (.../<name>/<config>/<version>), read
  from its own dataset_info.json / features.json (no builder code needed)."""
  import tensorflow_datasets as tfds
  builder = tfds.builder_from_directory(os.fspath(data_path))
  sources = builder.as_data_source()
  return {str(s): (src if raw else SceneSource(src)) for s, src in sources.items()}


def load_or_build(name: str, data_dir: str | os.PathLike,
                  manual_dir: str | os.PathLike | None = None, beam: bool = False, *,
                  config: Any = None, beam_options: Any = None, beam_runner: Any = None,
                  raw: bool = False) -> dict:
  """{split: random-access source of scene dicts} of a data set, built first if missing.

  Args:
    name: 'semantic_kitti', 'scannet', 's3dis' or 'synthetic' (or an alias in datasets.ALIASES).
    data_dir: the TFDS data dir; the data set lives in data_dir/<name>/<config>/1.0.0.
    manual_dir: the user's download (not needed for synthetic, nor once built).
    beam: build as an Apache Beam pipeline (needs apache-beam); beam_options (a
      PipelineOptions, or a list of flags such as ['--runner=DataflowRunner', ...] or
      ['--direct_num_workers=2']) and beam_runner go to beam.Pipeline. Without a runner in
      either, the local FnApiRunner runs it.
    config: None (default config), a config name, a dict of config fields (e.g.
      {'skip_bad_scenes': True}; synthetic: {'num_train': 4, 'num_val': 2,
      'num_points': 8000}) or a BuilderConfig.
    raw: return TFDS's ArrayRecordDataSource objects (scene_id as bytes) instead of
      SceneSource wrappers.

  Raises:
    ValueError (BadSceneError) naming the scene and file when a scene is bad and the config
    does not skip bad scenes; the data set is then left unbuilt.
  """
  name = datasets.canonical_name(name)
  builder = make_builder(name, data_dir, config)
  if not builder.is_prepared():
    # Two runs that need the same new data set: the second waits for the first's build and reads
    # it (TFDS alone fails the second with "FileExistsError: Cannot rename ...incomplete...").
    lock = Path(data_dir).expanduser() / f'.build-{name}-{builder.builder_config.name}.lock'
    with files.waiting_lock(lock, lambda holder: log.info(
        'another process is building %s/%s in %s (%s): waiting for it', name, builder.builder_config.name,
        builder.data_path, holder)):
      builder = make_builder(name, data_dir, config)  # asks the disk again: built while we waited?
      if not builder.is_prepared():
        _build(builder, name, manual_dir, beam, beam_options, beam_runner)
        return read_built(builder.data_path, raw=raw)
  check_raw_unchanged(name, Path(builder.data_path), manual_dir)
  log.info('reading %s/%s from %s', name, builder.builder_config.name, builder.data_path)
  return read_built(builder.data_path, raw=raw)


def _build(builder, name: str, manual_dir, beam: bool, beam_options, beam_runner) -> None:
  """Builds the data set of ``builder`` (the caller holds the build lock)."""
  import tensorflow_datasets as tfds
  needs_manual = bool(builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
  if needs_manual and manual_dir is None:
    raise FileNotFoundError(
        f'{name} ({builder.builder_config.name}) is not built in {builder.data_path}; '
        f'pass manual_dir, the download holding {datasets.get(name).layout or "the raw files"}, to build it')
  kwargs = {}
  if manual_dir is not None:
    manual = Path(manual_dir).expanduser()
    if not manual.is_dir():
      raise FileNotFoundError(f'{name}: manual_dir {manual} is not a directory; it should hold '
                              f'{datasets.get(name).layout or "the raw files"}')
    kwargs['manual_dir'] = os.fspath(manual)
  if beam or beam_options is not None or beam_runner is not None:
    beam_lib = tfds.core.lazy_imports.apache_beam
    pipeline_options = beam_lib.options.pipeline_options
    if beam_options is None or isinstance(beam_options, (list, tuple)):
      beam_options = pipeline_options.PipelineOptions(list(beam_options or []))
    if beam_runner is None and beam_options.view_as(
        pipeline_options.StandardOptions).runner is None:
      # Beam's DirectRunner (2.7x) first tries the Prism runner, which downloads a binary
      # from GitHub, and falls back to the in-process FnApiRunner; go there directly.
      beam_runner = LOCAL_BEAM_RUNNER
    kwargs.update(beam_options=beam_options, beam_runner=beam_runner)
  log.info('building %s/%s in %s%s', name, builder.builder_config.name, builder.data_path,
           ' with Apache Beam' if 'beam_options' in kwargs else '')
  t0 = time.monotonic()
  # TFDS prints its own banner ("Downloading and preparing dataset Unknown size") and tqdm bars
  # to the terminal, which turn into escape codes in a log file; the line above and the
  # reminders of progress.Activity say the same in the log.
  tfds.disable_progress_bar()
  with contextlib.redirect_stdout(io.StringIO()), progress.Activity.current().doing(
      f'building {name}/{builder.builder_config.name} in {builder.data_path}'):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(**kwargs))
  log.info('built %s/%s in %s', name, builder.builder_config.name, progress.duration(time.monotonic() - t0))
  if manual_dir is not None:
    write_raw_fingerprint(Path(builder.data_path), Path(manual_dir).expanduser())


# --- which raw files a build came from ------------------------------------------------------------

RAW_FINGERPRINT = 'ws3d_raw_files.json'  # beside TFDS's dataset_info.json in the built folder


def raw_fingerprint(manual_dir: Path) -> dict:
  """{relative path: [size, mtime_ns]} of every file under manual_dir (stat only, no reads)."""
  out = {}
  for root, dirs, names in os.walk(manual_dir):
    dirs.sort()
    for f in sorted(names):
      path = Path(root) / f
      st = path.stat()
      out[path.relative_to(manual_dir).as_posix()] = [st.st_size, st.st_mtime_ns]
  return out


def write_raw_fingerprint(data_path: Path, manual_dir: Path) -> None:
  files.write_json(data_path / RAW_FINGERPRINT, {'manual_dir': os.fspath(manual_dir.resolve()),
                                                 'files': raw_fingerprint(manual_dir)}, indent=None)


def check_raw_unchanged(name: str, data_path: Path, manual_dir) -> None:
  """Refuses a build whose raw files have changed since (added, removed, resized or touched),
  naming them and the command that rebuilds. Builds without a record (made by ``tfds build``,
  or before records were kept) and runs without manual_dir are trusted, and the log says so."""
  record_path = data_path / RAW_FINGERPRINT
  if manual_dir is None:
    return
  manual = Path(manual_dir).expanduser()
  if not record_path.is_file():
    log.warning('%s in %s has no record of the raw files it was built from; not checked against %s',
                name, data_path, manual)
    return
  if not manual.is_dir():
    raise FileNotFoundError(f'{name}: manual_dir {manual} is not a directory (the data set is built in '
                            f'{data_path}; drop --config.data.manual_dir to use that build)')
  old = json.loads(record_path.read_text())['files']
  new = raw_fingerprint(manual)
  changed = sorted(set(old) ^ set(new) | {k for k in set(old) & set(new) if old[k] != new[k]})
  if changed:
    shown = ', '.join(changed[:3]) + (f' and {len(changed) - 3} more' if len(changed) > 3 else '')
    raise RuntimeError(f'{name} in {data_path} was built from other raw files than {manual} holds now '
                       f'({shown} changed). Rebuild it: rm -r {data_path} and run again.')

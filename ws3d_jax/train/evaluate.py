"""Whole-scene prediction and the one evaluation loop every task runs.

    evaluate(task, ...)   every evaluation scene -> task.predict_scene -> confusion (mIoU as each
                          benchmark's evaluator computes it) + the task's own scorer (AP for
                          instances) -> optional exports in the benchmark's format and .ply
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ws3d_jax import progress, sparse
from ws3d_jax.constants import IGNORE_LABEL
from ws3d_jax.data import pipeline
from ws3d_jax.data.labels import PALETTES
from ws3d_jax.evaluation import export, semantic
from ws3d_jax.train import steps


@dataclasses.dataclass(frozen=True)
class EvalSpec:
  """What an evaluation reads of a run (``config.eval``, the voxel size, the task's settings)."""
  voxel_size: float
  export: tuple = ('official', 'ply')  # formats of the final evaluation's predictions
  ply_scenes: int = 8  # coloured .ply files for the first scenes only (they are large)
  tensorboard_scenes: int = 2  # prediction and ground truth as TensorBoard point clouds
  max_scenes_during_training: int = 0  # 0: all
  checkpoint: str = 'best'  # for --mode=eval: 'best', 'latest' or a step
  task_settings: object = None  # the task's settings (tasks/base.py), None for semantic segmentation


# Whole scenes are padded on a coarser ladder than training batches: every rung is a compile of
# the prediction function (tens of seconds on a CPU), and a room data set's scenes spread over
# 4-6 rungs of the 1.25 ladder but over 1-2 of a 2x one; inference pays at most 2x padding.
WHOLE_SCENE_GROWTH = 2.0
# One per process, as jit's own cache of predict_step is (keyed by the same static arguments).
_PREDICT_COMPILES = progress.Compiles('the whole-scene prediction', 'tens of seconds on a small CPU')


def scene_arrays(scene: dict, voxel_size: float, profile) -> tuple[pipeline.View, object]:
  """The padded model inputs of one whole, unaugmented scene, with its padded point coordinates
  (which the instance heads read), and their capacities."""
  profile = dataclasses.replace(profile, growth=max(profile.growth, WHOLE_SCENE_GROWTH))
  batch, caps = sparse.prepare_batch([(scene['xyz'], scene['features'])], voxel_size, profile, profile.num_levels,
                                     names=[scene['scene_id']])
  xyz = np.zeros((caps.points, 3), np.float32)
  xyz[:len(scene['xyz'])] = scene['xyz']
  return pipeline.View(**{k: getattr(batch, k) for k in pipeline.VIEW_KEYS}, xyz=xyz), caps


def predict_arrays(variables, view: pipeline.View, caps, model, keys=('logits',), **inputs) -> dict:
  """``steps.predict_step`` on a padded view, announced when it compiles and checked for
  capacity overflow; numpy outputs. The view's point coordinates are an input only where
  ``inputs`` passes them (the instance heads)."""
  view = view.replace(xyz=None, offset_target=None)
  if view.geometry is None:
    view = view.replace(geometry=sparse.host_geometry_of(view, caps, model.spec.chunk_sizes()))
  with _PREDICT_COMPILES.around((caps, model, keys), progress.caps_detail(caps)):
    out, needed = steps.predict_step(variables, view, caps, model, keys, **inputs)
  sparse.check_capacity(np.asarray(needed), caps.voxels + caps.pairs)
  return {k: np.asarray(v) for k, v in out.items()}


def scene_logits(variables, scene: dict, voxel_size: float, profile, model) -> np.ndarray:
  """Per-point logits (N, C) of one whole, unaugmented scene: every point reads its voxel."""
  arrays, caps = scene_arrays(scene, voxel_size, profile)
  return predict_arrays(variables, arrays, caps, model)['logits'][:len(scene['xyz'])]


def evaluate(task, variables, data, ev: EvalSpec, profile, model, max_scenes: int = 0,
             export_dir: Path | None = None) -> tuple[dict, np.ndarray]:
  """The task's metrics over the evaluation scenes (the first ``max_scenes``; 0: all), with the
  confusion matrix of the semantic predictions; optionally exports every prediction."""
  num_classes = len(data.class_names)
  conf = np.zeros((num_classes, num_classes), np.int64)
  scorer = task.make_scorer(ev.task_settings, data.class_names) if task.make_scorer else None
  count = len(data.eval_scenes) if not max_scenes else min(max_scenes, len(data.eval_scenes))
  done = 0
  with progress.Activity.current().doing(lambda: f'evaluating: {done} of {count} scenes done'):
    for i in range(count):
      scene = data.eval_scenes[i]
      out = task.predict_scene(variables, scene, ev, profile, model)
      conf += semantic.confusion(out['semantic'], scene['semantic'], num_classes, IGNORE_LABEL)
      if scorer is not None:
        scorer.add(scene, out)
      if export_dir is not None:
        task.export_scene(export_dir, scene, out, data.label_set, ev, i)
      done = i + 1
  summary = semantic.summarize(conf, data.class_names)
  if scorer is not None:
    summary = {**scorer.result(), **summary}
  return summary, conf


def export_semantic(export_dir: Path, scene: dict, pred: np.ndarray, label_set: str, ev: EvalSpec, index: int) -> None:
  """The benchmark's official files for every scene, coloured .ply for the first
  ``eval.ply_scenes``."""
  formats = set(ev.export)
  if index >= ev.ply_scenes:
    formats.discard('ply')
  export.export_predictions(label_set, export_dir, scene['scene_id'], scene['xyz'], pred, formats)


def write_semantic_eval(writer, step: int, summary: dict, conf: np.ndarray, class_names, prefix: str = 'val') -> None:
  writer.write_scalars(step, {f'{prefix}/miou': summary['miou'], f'{prefix}/accuracy': summary['accuracy'],
                              **{f'{prefix}/iou/{k}': v for k, v in summary['iou'].items() if v is not None}})
  writer.write_images(step, {f'{prefix}/confusion': export.confusion_image(conf, class_names)[None]})


def write_point_clouds(writer, step: int, task, variables, data, ev: EvalSpec, profile, model) -> None:
  """Prediction and ground truth of the first ``eval.tensorboard_scenes`` evaluation scenes as
  coloured point clouds for TensorBoard's mesh plugin (tab "Mesh"), the data set's palette."""
  palette = PALETTES[data.label_set]
  for i in range(min(ev.tensorboard_scenes, len(data.eval_scenes))):
    scene = data.eval_scenes[i]
    pred = task.predict_scene(variables, scene, ev, profile, model)['semantic']
    for kind, ids in (('prediction', pred), ('ground_truth', scene['semantic'])):
      writer.write_summaries(step, *export.point_cloud_summaries(f'scenes/{scene["scene_id"]}/{kind}',
                                                                 scene['xyz'], ids, palette))

"""Semantic segmentation: WS3DNet, the WS3D objective, per-point classes scored by mIoU."""
from __future__ import annotations

import numpy as np

from ws3d_jax.evaluation import semantic
from ws3d_jax.train import evaluate, parts
from ws3d_jax.train.batching import semantic_targets
from ws3d_jax.train.steps import BatchReader
from ws3d_jax.train.tasks.base import Task


def predict_scene(variables, scene: dict, config, profile, model) -> dict:
  """Per-point class of a whole scene (every point: voxel outputs read back through point2voxel)."""
  return {'semantic': np.argmax(evaluate.scene_logits(variables, scene, config.data.voxel_size, profile, model), -1)}


def export_scene(export_dir, scene: dict, prediction: dict, label_set: str, config, index: int) -> None:
  evaluate.export_semantic(export_dir, scene, prediction['semantic'], label_set, config, index)


TASK = Task(name='semantic', metric='miou', make_model=parts.make_model, make_objective=parts.make_objective,
            reader=BatchReader(targets=semantic_targets), predict_scene=predict_scene, export_scene=export_scene,
            write_eval=evaluate.write_semantic_eval, format_summary=semantic.format_table, point_clouds=True)

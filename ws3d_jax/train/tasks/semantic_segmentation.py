"""Semantic segmentation: WS3DNet, the WS3D objective, per-point classes scored by mIoU."""
from __future__ import annotations

import numpy as np

from ws3d_jax.evaluation import semantic
from ws3d_jax.train import evaluate
from ws3d_jax.train.steps import BatchReader, semantic_targets
from ws3d_jax.train.tasks.base import Task


def predict_scene(variables, scene: dict, ev: evaluate.EvalSpec, profile, model) -> dict:
  """Per-point class of a whole scene (every point: voxel outputs read back through point2voxel)."""
  return {'semantic': np.argmax(evaluate.scene_logits(variables, scene, ev.voxel_size, profile, model), -1)}


def export_scene(export_dir, scene: dict, prediction: dict, label_set: str, ev: evaluate.EvalSpec, index: int) -> None:
  evaluate.export_semantic(export_dir, scene, prediction['semantic'], label_set, ev, index)


TASK = Task(name='semantic', metric='miou', make_model=lambda ws3d, settings: ws3d,
            make_objective=lambda objective, settings: objective, reader=BatchReader(targets=semantic_targets),
            predict_scene=predict_scene, export_scene=export_scene, write_eval=evaluate.write_semantic_eval,
            format_summary=semantic.format_table, point_clouds=True)

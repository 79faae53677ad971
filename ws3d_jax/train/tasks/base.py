"""What a task (semantic or instance segmentation) supplies to the shared training and
evaluation code: its model, objective, how its step reads a batch, how it predicts and scores a
whole scene, and what it writes."""
from __future__ import annotations

import dataclasses
from typing import Callable

from ws3d_jax.train.steps import BatchReader


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  metric: str  # the summary key the best checkpoint is chosen by
  make_model: Callable  # (config, num_classes, bn_axis=steps.AXIS) -> flax module
  make_objective: Callable  # (config, num_classes, total_steps) -> objective
  reader: BatchReader  # the step's view of a batch: the objective's targets, the model's extra inputs
  predict_scene: Callable  # (variables, scene, config, profile, model) -> {'semantic': (N,) ids, ...}
  export_scene: Callable  # (export_dir, scene, prediction, label_set, config, index)
  write_eval: Callable  # (writer, step, summary, conf, class_names)
  format_summary: Callable  # summary -> the table for the log
  make_scorer: Callable | None = None  # (config, class_names) -> .add(scene, prediction), .result() -> metrics
  max_proposals: Callable = lambda config: 0  # proposals per batch (0: no instance arrays)
  before_step: Callable | None = None  # (config, model, total_steps) -> (state, step, batch) -> batch (host)
  point_clouds: bool = False  # write prediction and ground truth clouds to TensorBoard at the final evaluation

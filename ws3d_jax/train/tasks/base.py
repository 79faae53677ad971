"""What a task (semantic or instance segmentation) supplies to the shared training and
evaluation code: its model, objective, how its step reads a batch, how it predicts and scores a
whole scene, and what it writes. A task never reads the config: the run builder hands it its
settings (``settings_type``, made from the config section of the task's name) and the
evaluation's ``EvalSpec``, whose ``task_settings`` they are."""
from __future__ import annotations

import dataclasses
from typing import Callable

from ws3d_jax.train.steps import BatchReader


@dataclasses.dataclass(frozen=True)
class Task:
  name: str
  metric: str  # the summary key the best checkpoint is chosen by
  make_model: Callable  # (WS3DNet, settings) -> flax module
  make_objective: Callable  # (Objective, settings) -> objective
  reader: BatchReader  # the step's view of a batch: the objective's targets, the model's extra inputs
  predict_scene: Callable  # (variables, scene, EvalSpec, profile, model) -> {'semantic': (N,) ids, ...}
  export_scene: Callable  # (export_dir, scene, prediction, label_set, EvalSpec, index)
  write_eval: Callable  # (writer, step, summary, conf, class_names)
  format_summary: Callable  # summary -> the table for the log
  make_scorer: Callable | None = None  # (settings, class_names) -> .add(scene, prediction), .result() -> metrics
  before_step: Callable | None = None  # (settings, model, total_steps) -> (state, step, batch) -> batch (host)
  point_clouds: bool = False  # write prediction and ground truth clouds to TensorBoard at the final evaluation
  settings_type: type | None = None  # frozen dataclass of the task's config section (config.<name>)

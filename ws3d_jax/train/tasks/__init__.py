"""The tasks, by the name ``config.task`` gives."""
from __future__ import annotations

from ws3d_jax.train.tasks import instance_segmentation, semantic_segmentation
from ws3d_jax.train.tasks.base import Task

TASKS = {t.name: t for t in (semantic_segmentation.TASK, instance_segmentation.TASK)}


def get(name: str) -> Task:
  if name not in TASKS:
    raise ValueError(f'config.task must be one of {sorted(TASKS)}, got {name!r}')
  return TASKS[name]

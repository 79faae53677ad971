"""What a run trains and evaluates with, built once from its config and its scenes: a frozen
``Setup`` (task, model, evaluation model, objective, optimiser and schedule, fitted batcher)."""
from __future__ import annotations

import dataclasses

import jax
import optax
from flax import linen as nn

from ws3d_jax import hosts, progress
from ws3d_jax.data import pipeline
from ws3d_jax.train import parts, steps
from ws3d_jax.train.batching import fitted_batcher, sample_elements
from ws3d_jax.train.tasks import Task


@dataclasses.dataclass(frozen=True)
class Setup:
  task: Task
  model: nn.Module  # BatchNorm statistics averaged over the devices (the pmapped step)
  eval_model: nn.Module  # the same network for one unsharded scene
  objective: object  # static argument of the step: (outputs, geoms, targets, rng, step) -> (loss, terms)
  tx: optax.GradientTransformation
  schedule: object  # step -> learning rate
  batcher: pipeline.Batcher
  total_steps: int
  example: tuple  # one batch of the run's shape, as elements: what the variables are initialised on


def total_steps(config, data) -> tuple[int, int]:
  """(total steps, steps per epoch) of the run."""
  per_epoch = parts.epoch_steps(len({e['scene'] for e in data.split['labeled'] + data.split['unlabeled']}), config)
  return config.train.steps or config.train.epochs * per_epoch, per_epoch


def make_setup(config, data, task: Task) -> Setup:
  t = config.train
  total, per_epoch = total_steps(config, data)
  elements = sample_elements(data, config)
  share = hosts.this_process()
  batcher = fitted_batcher(config, elements, share, max_proposals=task.max_proposals(config),
                           pin_branches=[(data.labeled, t.labeled_batch // share.devices),
                                         (data.unlabeled, t.unlabeled_batch // share.devices)])
  num_classes = len(data.class_names)
  model = task.make_model(config, num_classes)
  tx, schedule = parts.make_optimizer(config.optim, total, per_epoch)
  return Setup(task=task, model=model, eval_model=model.clone(bn_axis=None),
               objective=task.make_objective(config, num_classes, total), tx=tx, schedule=schedule, batcher=batcher,
               total_steps=total, example=tuple(elements))


def initial_state(seed: int, model, tx, batcher: pipeline.Batcher, elements, what: str = 'the model'):
  """The variables of ``model`` initialised on the first shard of one batch, as a TrainState."""
  first = batcher(list(elements))
  shard0 = jax.tree.map(lambda x: x[0], first['view0'])
  with progress.Compiles(f'{what} initialisation', 'seconds to a minute').around(None):
    return steps.create_train_state(jax.random.PRNGKey(seed), model, tx, shard0, first['caps'])

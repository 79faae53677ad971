"""The jitted steps, as small pure functions of (state, batch).

``train_step`` is data parallel over the local devices (jax.pmap over axis 'batch'): every
device holds a replica of the state and one shard of the batch (its own scenes, padded to the
batch's shared capacities), gradients and BatchNorm statistics are averaged across devices.
The capacities, the model and the objective are static arguments: each capacity bucket
compiles once. Nothing in the step talks to the host; a non-finite loss, gradient or update
leaves the state as it was and is counted in the metrics, which the loop reads at its log and
checkpoint steps.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from ws3d_jax import progress, sparse
from ws3d_jax.data.pipeline import Batch
from ws3d_jax.losses.targets import Targets

AXIS = 'batch'


class TrainState(train_state.TrainState):
  batch_stats: dict


def create_train_state(rng, model, tx, view, caps) -> TrainState:
  """Initialises the variables on one shard's first view (a data.pipeline.View)."""
  @jax.jit
  def init(view):
    return model.init(rng, view.features, view_geometry(view, caps, model), train=False)

  variables = init(view)
  # apply_fn stays None: the step gets the model as a static argument, and a bound method here
  # would make every new model object a new pytree structure (a recompile on resume).
  return TrainState.create(apply_fn=None, params=variables['params'], tx=tx, batch_stats=variables['batch_stats'])


def initial_state(seed: int, model, tx, batcher, elements, what: str = 'the model') -> TrainState:
  """The variables of ``model`` initialised on the first shard of one batch of ``elements`` (as
  ``batcher`` pads it), as a TrainState."""
  first = batcher(list(elements))
  shard0 = jax.tree.map(lambda x: x[0], first.views[0])
  with progress.Compiles(f'{what} initialisation', 'seconds to a minute').around(None):
    return create_train_state(jax.random.PRNGKey(seed), model, tx, shard0, first.caps)


def replicate(tree, devices=None):
  """One copy of ``tree`` per device (default: every local device), laid out exactly as
  ``train_step`` returns its state.

  flax's ``jax_utils.replicate`` places the copies on a mesh of another axis name, and the
  sharding is part of the compiled step's signature: its first step's state would not match
  the second's, and every run would compile the step twice.
  """
  devices = list(devices or jax.local_devices())
  sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), (AXIS,)),
                                        jax.sharding.PartitionSpec(AXIS))
  return jax.tree.map(lambda x: jax.device_put(np.stack([np.asarray(x)] * len(devices)), sharding), tree)


def semantic_targets(batch: Batch) -> Targets:
  """The losses' targets of a semantic batch: labels, and the regions where the scenes have them."""
  return Targets(labels=batch.labels, regions=batch.regions)


def no_inputs(batch: Batch, view: int) -> dict:
  del batch, view
  return {}


@dataclasses.dataclass(frozen=True)
class BatchReader:
  """How a task reads the pipeline's batch inside the step: the typed targets its objective
  takes, and the extra keyword inputs its model takes per view. Module-level functions, so the
  reader is hashable and a static argument of the step."""
  targets: Callable  # Batch -> losses.targets.Targets
  model_inputs: Callable = no_inputs  # (Batch, view index) -> {name: array}


def forward_views(model, variables: dict, batch: Batch, geoms: list, reader: BatchReader, train: bool = True):
  """Every view of the batch through the model, in turn, the BatchNorm statistics of one view
  carried into the next (as two calls of a PyTorch model in train mode would). Returns
  (outputs per view, the statistics after the last view)."""
  stats, outputs = variables['batch_stats'], []
  for v, (view, geom) in enumerate(zip(batch.views, geoms)):
    out, updates = model.apply({'params': variables['params'], 'batch_stats': stats}, view.features, geom,
                               train=train, mutable=['batch_stats'], **reader.model_inputs(batch, v))
    stats = updates['batch_stats']
    outputs.append(out)
  return outputs, stats


def view_geometry(view, caps, model) -> sparse.Geometry:
  """The kernel maps of a view: the batcher's, where it built them on the host (the default
  path), else built here on the device."""
  chunks = model.spec.chunk_sizes()
  if view.geometry is None:
    return sparse.geometry_of(view, caps, chunks)
  built = tuple(None if p is None else p.in_idx.shape[-1] for p in view.geometry.pairs)
  if built != tuple(chunks):
    raise ValueError(f'the batch carries kernel maps of chunk sizes {built} but the model reads {tuple(chunks)}: '
                     'build the batcher with the chunk sizes of the model it feeds')
  return view.geometry


def view_geometries(batch: Batch, caps, model) -> list:
  return [view_geometry(view, caps, model) for view in batch.views]


# The state is not donated: with donation XLA:CPU copied about 420 parameter and optimizer leaves
# on entry (so that the outputs could reuse their buffers), 11% of the step's kernels; without
# it one state more is alive during the step (a few MB here, 3x the parameters in general).
@functools.partial(jax.pmap, axis_name=AXIS, static_broadcasted_argnums=(3, 4, 5, 6))
def train_step(state: TrainState, batch: Batch, rng, caps, model, objective, reader: BatchReader):
  """One optimisation step on this device's shard. Returns (state, metrics averaged over devices)."""
  rng = jax.random.fold_in(jax.random.fold_in(rng, state.step), jax.lax.axis_index(AXIS))
  geoms = view_geometries(batch, caps, model)
  targets = reader.targets(batch)

  def loss_fn(params):
    outputs, stats = forward_views(model, {'params': params, 'batch_stats': state.batch_stats}, batch, geoms, reader)
    loss, terms = objective(outputs, geoms, targets, rng, state.step)
    return loss, (terms, stats)

  (loss, (terms, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = jax.lax.pmean(grads, AXIS)
  grad_norm = optax.tree.norm(grads)
  new_state = state.apply_gradients(grads=grads, batch_stats=stats)
  # The new parameters too: a finite gradient times an infinite learning rate is not finite.
  finite = jnp.isfinite(jax.lax.pmean(loss, AXIS)) & jnp.isfinite(grad_norm) & jnp.isfinite(
      optax.tree.norm(new_state.params))
  state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
  metrics = jax.lax.pmean({'loss': loss, **terms}, AXIS)
  metrics.update(grad_norm=grad_norm, nonfinite=1 - finite.astype(jnp.int32),
                 needed=jax.lax.pmax(jnp.max(jnp.stack([g.needed for g in geoms]), 0), AXIS))
  return state, metrics


@functools.partial(jax.jit, static_argnames=('caps', 'model', 'keys'))
def predict_step(variables: dict, view, caps, model, keys=('logits',), **inputs):
  """The model outputs named in ``keys`` for one (unsharded) view (a data.pipeline.View) in
  inference mode, and the needed capacities. ``inputs``: the model's extra keyword inputs (an
  instance model's point coordinates and proposals). Outputs not asked for are not computed."""
  geom = view_geometry(view, caps, model)
  out = model.apply(variables, view.features, geom, train=False, **inputs)
  return {k: getattr(out, k) for k in keys}, geom.needed

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

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from ws3d_jax import sparse

AXIS = 'batch'
VIEWS = ('view0', 'view1')


class TrainState(train_state.TrainState):
  batch_stats: dict


def create_train_state(rng, model, tx, arrays: dict, caps) -> TrainState:
  """Initialises the variables on one shard's first view (a dict of the model inputs)."""
  @jax.jit
  def init(arrays):
    geom = sparse.geometry_of(arrays, caps, model.spec.chunk_sizes())
    return model.init(rng, arrays['features'], geom, train=False)

  variables = init(arrays)
  # apply_fn stays None: the step gets the model as a static argument, and a bound method here
  # would make every new model object a new pytree structure (a recompile on resume).
  return TrainState.create(apply_fn=None, params=variables['params'], tx=tx, batch_stats=variables['batch_stats'])


def replicate(tree):
  """One copy of ``tree`` per local device, laid out exactly as ``train_step`` returns its state.

  flax's ``jax_utils.replicate`` places the copies on a mesh of another axis name, and the
  sharding is part of the compiled step's signature: its first step's state would not match
  the second's, and every run would compile the step twice.
  """
  devices = jax.local_devices()
  sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), (AXIS,)),
                                        jax.sharding.PartitionSpec(AXIS))
  return jax.tree.map(lambda x: jax.device_put(np.stack([np.asarray(x)] * len(devices)), sharding), tree)


def views_of(batch: dict) -> list:
  return [v for v in VIEWS if v in batch]


PROPOSAL_KEYS = ('proposal_point', 'proposal_id', 'proposal_valid', 'proposal_target')


def instance_inputs(batch: dict, view: str) -> dict:
  """The extra inputs of an instance model (PointGroupNet): the view's point coordinates, and
  on the first view the proposals the ScoreNet rates. Empty for a semantic batch."""
  if 'offset_target' not in batch[view]:
    return {}
  proposals = {k: batch[k] for k in PROPOSAL_KEYS} if view == VIEWS[0] else None
  return {'xyz': batch[view]['xyz'], 'proposals': proposals}


@functools.partial(jax.pmap, axis_name=AXIS, static_broadcasted_argnums=(3, 4, 5), donate_argnums=(0,))
def train_step(state: TrainState, batch: dict, rng, caps, model, objective):
  """One optimisation step on this device's shard. Returns (state, metrics averaged over devices)."""
  rng = jax.random.fold_in(jax.random.fold_in(rng, state.step), jax.lax.axis_index(AXIS))
  views = views_of(batch)
  geoms = [sparse.geometry_of(batch[v], caps, model.spec.chunk_sizes()) for v in views]

  def loss_fn(params):
    stats, outputs = state.batch_stats, []
    for v, geom in zip(views, geoms):
      out, updates = model.apply({'params': params, 'batch_stats': stats}, batch[v]['features'], geom,
                                 train=True, mutable=['batch_stats'], **instance_inputs(batch, v))
      stats = updates['batch_stats']
      outputs.append(out)
    loss, terms = objective(outputs, geoms, batch, rng, state.step)
    return loss, (terms, stats)

  (loss, (terms, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = jax.lax.pmean(grads, AXIS)
  grad_norm = optax.tree.norm(grads)
  new_state = state.apply_gradients(grads=grads, batch_stats=stats)
  finite = jnp.isfinite(jax.lax.pmean(loss, AXIS)) & jnp.isfinite(grad_norm) & jnp.isfinite(
      optax.tree.norm(new_state.params))
  state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
  metrics = jax.lax.pmean({'loss': loss, **terms}, AXIS)
  metrics.update(grad_norm=grad_norm, nonfinite=1 - finite.astype(jnp.int32),
                 needed=jax.lax.pmax(jnp.max(jnp.stack([g.needed for g in geoms]), 0), AXIS))
  return state, metrics


@functools.partial(jax.jit, static_argnames=('caps', 'model'))
def predict_step(variables: dict, arrays: dict, caps, model):
  """Per-point logits of one (unsharded) batch, in inference mode; plus the needed capacities."""
  geom = sparse.geometry_of(arrays, caps, model.spec.chunk_sizes())
  out = model.apply(variables, arrays['features'], geom, train=False)
  return out['logits'], geom.needed

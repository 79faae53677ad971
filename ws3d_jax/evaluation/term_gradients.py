"""Which loss term steers the update? Per-term gradient norms and their alignment with the
cross-entropy gradient, at a checkpoint of a run, on the batches that run trained on.

When WS3D trails sup_only, a term whose (weighted) gradient dwarfs the cross-entropy's, or
points against it, is where to look; the loss values alone do not tell (Adam rescales the sum).

    python -m ws3d_jax.evaluation.term_gradients --workdir=runs/x --config=configs/scannet.py:10pct \
        [--step=100] [--batches=4] [--config.x=y ...]
"""
from __future__ import annotations

import json

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

TERMS = ('ce', 'sup_contrast', 'energy', 'contrast')


def term_gradients(params, batch_stats, model, objective, batch: dict, rng) -> dict:
  """Weighted gradient of each WS3D term for one (unsharded) batch: {term: flat gradient}."""
  from ws3d_jax import sparse  # noqa: PLC0415
  from ws3d_jax.train import steps  # noqa: PLC0415

  caps = batch['caps']
  arrays = {k: v for k, v in batch.items() if k not in ('caps', 'scene_id')}
  views = steps.views_of(arrays)
  weights = {'ce': objective.w_ce, 'sup_contrast': objective.w_sup_contrast, 'energy': objective.w_energy,
             'contrast': objective.w_contrast}

  def terms_of(params, arrays):
    geoms = [sparse.geometry_of(arrays[v], caps, model.spec.chunk_sizes()) for v in views]
    stats, outputs = batch_stats, []
    for v, geom in zip(views, geoms):
      out, updates = model.apply({'params': params, 'batch_stats': stats}, arrays[v]['features'], geom, train=True,
                                 mutable=['batch_stats'])
      stats = updates['batch_stats']
      outputs.append(out)
    _, terms = objective(outputs, geoms, arrays, rng)
    return jnp.stack([weights[k] * terms.get(k, 0.0) for k in TERMS])

  # One compiled gradient, called once per term (a Jacobian would hold every term's backward
  # pass in memory at once).
  @jax.jit
  def grad_of(params, arrays, pick):
    g = jax.grad(lambda p: terms_of(p, arrays) @ pick)(params)
    return jax.flatten_util.ravel_pytree(g)[0]

  return {k: np.asarray(grad_of(params, arrays, jnp.eye(len(TERMS))[i]), np.float64) for i, k in enumerate(TERMS)}


def summarize(grads: list[dict]) -> dict:
  """Mean over batches of each term's gradient norm, its share of the summed gradient's norm,
  and its cosine with the cross-entropy gradient."""
  out = {}
  for k in TERMS:
    norms, cosines, shares = [], [], []
    for g in grads:
      total = sum(g.values())
      n = np.linalg.norm(g[k])
      norms.append(n)
      shares.append(float(g[k] @ total) / max(float(total @ total), 1e-30))
      ce = g['ce']
      cosines.append(float(g[k] @ ce) / max(n * np.linalg.norm(ce), 1e-30))
    out[k] = {'grad_norm': float(np.mean(norms)), 'share_of_update': float(np.mean(shares)),
              'cosine_with_ce': float(np.mean(cosines))}
  return out


def main(argv):
  del argv
  from pathlib import Path  # noqa: PLC0415

  import orbax.checkpoint as ocp  # noqa: PLC0415
  from absl import flags  # noqa: PLC0415

  from ws3d_jax.data import pipeline, sources  # noqa: PLC0415
  from ws3d_jax.data.augment import AugmentParams  # noqa: PLC0415
  from ws3d_jax.train import parts, trainer  # noqa: PLC0415

  config, workdir = flags.FLAGS.config, Path(flags.FLAGS.workdir)
  data = sources.load_experiment(config, workdir)
  num_classes = len(data.class_names)
  manager = ocp.CheckpointManager((workdir / 'checkpoints').absolute())
  step = flags.FLAGS.step or manager.latest_step()
  state = manager.restore(step)
  if config.loss.w_energy and config.loss.boundary_labels and config.boundary.enabled:
    from ws3d_jax.train import boundary  # noqa: PLC0415
    data.unlabeled.boundary = boundary.boundary_points(config, data, workdir, None)
  model = parts.make_model(config, num_classes, bn_axis=None)
  objective = parts.make_objective(config, num_classes)
  batcher = pipeline.Batcher(config.data.voxel_size, None, parts.NUM_LEVELS)
  batcher.profile = parts.fit_profile(batcher, trainer.sample_elements(data, config), config.buckets)
  t = config.train
  stream = pipeline.ws3d_stream(data.labeled, data.unlabeled, t.labeled_batch, t.unlabeled_batch, config.seed,
                                batcher, AugmentParams.from_config(config.data.augment), start_step=step,
                                num_threads=1)
  grads = [term_gradients(state['params'], state['batch_stats'], model, objective, next(stream),
                          jax.random.PRNGKey(i)) for i in range(flags.FLAGS.batches)]
  print(json.dumps({'step': step, 'batches': flags.FLAGS.batches, **summarize(grads)}, indent=2))


if __name__ == '__main__':
  from absl import app, flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', None, 'The run\'s config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'The run\'s workdir.')
  flags.DEFINE_integer('step', 0, 'The checkpoint to read (default: the latest).')
  flags.DEFINE_integer('batches', 2, 'How many training batches to average over.')
  app.run(main)

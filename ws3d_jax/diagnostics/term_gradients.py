"""Which loss term steers the update? Per-term gradient norms and their alignment with the
cross-entropy gradient, at a checkpoint of a run, on the batches that run trained on.

When WS3D trails sup_only, a term whose (weighted) gradient dwarfs the cross-entropy's, or
points against it, is where to look; the loss values alone do not tell (Adam rescales the sum).

    python -m ws3d_jax.diagnostics.term_gradients --workdir=runs/x --config=configs/scannet.py:10pct \
        [--step=100] [--batches=4] [--config.x=y ...]
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from ws3d_jax.data import pipeline, sources
from ws3d_jax.train import boundary_network, run_builder, steps
from ws3d_jax.train.checkpoints import saved_variables
from ws3d_jax.train.steps import semantic_targets

READER = steps.BatchReader(targets=semantic_targets)
TERMS = ('ce', 'sup_contrast', 'energy', 'contrast')


def term_gradients(params, batch_stats, model, objective, batch, rng, reader=READER) -> dict:
  """Weighted gradient of each WS3D term for one (unsharded) data.pipeline.Batch: {term: flat gradient}."""
  caps = batch.caps
  arrays = batch.on_device()
  weights = {'ce': objective.w_ce, 'sup_contrast': objective.w_sup_contrast, 'energy': objective.w_energy,
             'contrast': objective.w_contrast}

  def terms_of(params, arrays):
    geoms = steps.view_geometries(arrays, caps, model)
    outputs, _ = steps.forward_views(model, {'params': params, 'batch_stats': batch_stats}, arrays, geoms, reader)
    _, terms = objective(outputs, geoms, reader.targets(arrays), rng)
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


def report(config, workdir: Path, step: int = 0, batches: int = 2) -> dict:
  """Per-term gradient summary of the checkpoint of ``step`` (0: the latest) of the run in
  ``workdir``, over ``batches`` of the batches the run trained on from that step. Computes the
  boundary points again when their cache is missing or stale."""
  data = sources.load_experiment(run_builder.data_spec(config), workdir)
  run = run_builder.build(config, data, one_device=True)
  variables, step = saved_variables(workdir, step)
  data = boundary_network.with_boundary_points(run.boundary, data, workdir)
  t = run.train
  stream = pipeline.ws3d_stream(data.labeled, data.unlabeled, t.labeled_batch, t.unlabeled_batch, t.seed,
                                run.batcher, run.augment, start_step=step, num_threads=1)
  grads = [term_gradients(variables['params'], variables['batch_stats'], run.model, run.objective, next(stream),
                          jax.random.PRNGKey(i)) for i in range(batches)]
  return {'step': step, 'batches': batches, **summarize(grads)}


def main(argv):
  del argv
  from absl import flags  # noqa: PLC0415
  f = flags.FLAGS
  print(json.dumps(report(f.config, Path(f.workdir), f.step, f.batches), indent=2))


if __name__ == '__main__':
  from absl import app, flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', None, 'The run\'s config file.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'The run\'s workdir.')
  flags.DEFINE_integer('step', 0, 'The checkpoint to read (default: the latest).')
  flags.DEFINE_integer('batches', 2, 'How many training batches to average over.')
  app.run(main)

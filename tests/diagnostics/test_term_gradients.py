"""The per-term gradient report: shares and cosines against hand-computed values, and on a real
(tiny) WS3D batch, per-term gradients that add up to the gradient of the whole objective."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic
from tests.sizes import tiny
from ws3d_jax.data import pipeline
from ws3d_jax import sparse
from ws3d_jax.diagnostics.term_gradients import READER, TERMS, summarize, term_gradients
from ws3d_jax.data.batch_fitting import fitted_batcher
from ws3d_jax.train import run_builder, steps


def test_summary_shares_and_cosines_by_hand():
  g = {'ce': np.array([1.0, 0.0]), 'sup_contrast': np.array([0.0, 3.0]), 'energy': np.array([-1.0, 0.0]),
       'contrast': np.array([0.0, 1.0])}
  out = summarize([g])
  # total = (0, 4): |total|^2 = 16; shares = g.total / 16.
  assert out['sup_contrast']['share_of_update'] == pytest.approx(12 / 16)
  assert out['contrast']['share_of_update'] == pytest.approx(4 / 16)
  assert out['ce']['share_of_update'] == 0.0 and out['energy']['share_of_update'] == 0.0
  assert out['energy']['cosine_with_ce'] == pytest.approx(-1.0) and out['sup_contrast']['cosine_with_ce'] == 0.0
  assert out['sup_contrast']['grad_norm'] == pytest.approx(3.0)


def _scene(rng, n=600):
  xyz = rng.uniform(0, 2, (n, 3)).astype(np.float32)
  region = (xyz[:, 0] * 4).astype(np.int32) * 8 + (xyz[:, 1] * 4).astype(np.int32)
  _, region = np.unique(region, return_inverse=True)
  q = region.max() + 1
  pairs = np.array([(i, i + 1) for i in range(q - 1)], np.int32)
  return {'scene_id': 's', 'xyz': xyz, 'features': rng.uniform(0, 1, (n, 3)).astype(np.float32),
          'semantic': rng.integers(0, 4, n).astype(np.int32), 'region_id': region.astype(np.int32),
          'region_pairs': pairs, 'pair_boundary': (np.arange(len(pairs)) % 3 == 0).astype(np.float32)}


@pytest.mark.slow  # compiles one gradient per term and the total
def test_term_gradients_add_up_to_the_objective_gradient():
  config = tiny(synthetic.get_config('smoke'))
  config.loss.gamma = 0.05  # every region confident at init, so every term is active
  config.loss.supervised_contrast = True
  rng = np.random.default_rng(0)
  labeled, unlabeled = _scene(rng), _scene(rng)
  unlabeled['semantic'] = np.full_like(unlabeled['semantic'], 255)
  unlabeled['labeled'], labeled['labeled'] = False, True
  aug = run_builder.augment_params(config.data.augment)
  elements = [pipeline.make_element(s, rng, aug, 2) for s in (labeled, unlabeled)]
  config.data.voxel_size = 0.1
  model = run_builder.ws3d_net(config, 4, bn_axis=None)
  batch = fitted_batcher(run_builder.batching_spec(config), elements, model.spec.chunk_sizes())(elements)
  objective = run_builder.objective(config, 4, axis_name=None)
  arrays = batch.on_device()
  geom = sparse.geometry_of(arrays.views[0], batch.caps, model.spec.chunk_sizes())
  variables = model.init(jax.random.PRNGKey(0), arrays.views[0].features, geom)
  grads = term_gradients(variables['params'], variables['batch_stats'], model, objective, batch,
                         jax.random.PRNGKey(1))
  assert set(grads) == set(TERMS) and all(np.linalg.norm(g) > 0 for g in grads.values())

  def total(params):
    geoms = steps.view_geometries(arrays, batch.caps, model)
    outputs, _ = steps.forward_views(model, {'params': params, 'batch_stats': variables['batch_stats']}, arrays,
                                     geoms, READER)
    return objective(outputs, geoms, READER.targets(arrays), jax.random.PRNGKey(1))[0]

  expected = jax.flatten_util.ravel_pytree(jax.grad(total)(variables['params']))[0]
  np.testing.assert_allclose(sum(grads.values()), np.asarray(expected), rtol=1e-3, atol=1e-5)
  assert jnp.isfinite(expected).all()

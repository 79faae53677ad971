"""The masked BatchNorm's hand-written backward against autodiff of the plain formula."""
import jax
import jax.numpy as jnp
import numpy as np

from ws3d_jax.sparse.layers import MaskedBatchNorm, masked_batch_norm


def _reference(x, m, scale, bias, eps=1e-5):
  """Masked BatchNorm as the textbook writes it (population variance over the real rows)."""
  rows = m[:, 0] > 0
  mean = x[rows].mean(axis=0)
  var = jnp.square(x[rows] - mean).mean(axis=0)
  return ((x - mean) / jnp.sqrt(var + eps) * scale + bias) * m, mean, var


def test_forward_and_gradients_match_autodiff_of_the_formula():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((50, 6)) * 3 + 2, jnp.float32)
  m = jnp.asarray((rng.random((50, 1)) < 0.7).astype(np.float32))
  scale = jnp.asarray(rng.standard_normal(6), jnp.float32)
  bias = jnp.asarray(rng.standard_normal(6), jnp.float32)
  probe = jnp.asarray(rng.standard_normal((50, 6)), jnp.float32)
  ours = lambda x, s, b: masked_batch_norm(x, m, s, b, 1e-5, None)
  ref = lambda x, s, b: _reference(x, m, s, b)
  for got, want in zip(ours(x, scale, bias), ref(x, scale, bias)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  loss = lambda f: lambda x, s, b: jnp.sum(f(x, s, b)[0] * probe)
  grads = jax.grad(loss(ours), argnums=(0, 1, 2))(x, scale, bias)
  want = jax.grad(loss(ref), argnums=(0, 1, 2))(x, scale, bias)
  for got, exp in zip(grads, want):
    np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-5)
  assert not np.asarray(grads[0])[np.asarray(m[:, 0]) == 0].any()  # padding rows get no gradient


def test_module_updates_running_statistics_and_zeroes_padding():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((40, 3)) + 5, jnp.float32)
  mask = jnp.arange(40) < 30
  bn = MaskedBatchNorm(use_running_average=False)
  variables = bn.init(jax.random.PRNGKey(0), x, mask)
  y, updates = bn.apply(variables, x, mask, mutable=['batch_stats'])
  real = np.asarray(x)[:30]
  np.testing.assert_allclose(updates['batch_stats']['mean'], 0.1 * real.mean(0), rtol=1e-5)
  np.testing.assert_allclose(updates['batch_stats']['var'], 0.9 + 0.1 * real.var(0), rtol=1e-5)
  assert not np.asarray(y)[30:].any()
  np.testing.assert_allclose(np.asarray(y)[:30].mean(0), 0, atol=1e-5)

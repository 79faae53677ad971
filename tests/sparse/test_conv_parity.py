"""Every sparse convolution equals lax.conv_general_dilated on the densified grid, forward and
backward, in float32."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ws3d_jax.sparse import fused, ops, reference
from tests.sparse import util

TOL = 1e-4
EXTENT = 10  # even, so stride-2 grids tile exactly


def _scenes(seed, channels=4):
  rng = np.random.default_rng(seed)
  return [util.random_scene(rng, EXTENT, fill, channels) for fill in (0.25, 0.1)]


def _grid_shape(batch_size, level):
  return (batch_size,) + (EXTENT >> level,) * 3


def _max_err(a, b):
  return float(jnp.max(jnp.abs(jnp.asarray(a) - jnp.asarray(b))))


NOT_BUILT = ('the fused CPU kernel is not built here (no g++ when `bash setup.sh` ran); '
             'the network runs the pairs path instead')


def _submanifold(impl, x, w, geom, level):
  if impl == 'pairs':
    return ops.submanifold_conv_pairs(x, w, geom.pairs[level])
  if impl == 'fused':
    if not fused.available():
      pytest.skip(NOT_BUILT)
    return fused.submanifold_conv_fused(x, w, geom.levels[level].nbr)
  return ops.submanifold_conv_dense(x, w, geom.levels[level].nbr)


# (4, 5): channel counts that no register tile of the fused kernel divides; its other shapes cover
# every tile it has (the pure-JAX dataflows have none).
@pytest.mark.parametrize('impl,level,cin,cout', [
    (impl, level, 4, 5) for impl in ('pairs', 'dense', 'fused') for level in (0, 1)] + [
    ('fused', 0, 16, 24), ('fused', 0, 40, 64), ('fused', 1, 12, 48), ('fused', 0, 64, 32), ('fused', 1, 8, 16)])
def test_submanifold_matches_dense(impl, level, cin, cout):
  batch, geom, _ = util.make_batch(_scenes(0))
  lv = geom.levels[level]
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((lv.coords.shape[0], cin)), jnp.float32) * lv.valid[:, None]
  w = jnp.asarray(rng.standard_normal((27, cin, cout)), jnp.float32)
  probe = jnp.asarray(rng.standard_normal((lv.coords.shape[0], cout)), jnp.float32)

  def sparse_loss(x, w):
    out = _submanifold(impl, x, w, geom, level)
    return jnp.sum(out * lv.valid[:, None] * probe), out

  def dense_loss(x, w):
    grid = reference.densify(lv.coords, x, lv.valid, _grid_shape(2, level))
    out = reference.sample(reference.dense_submanifold(grid, w), lv.coords, lv.valid)
    return jnp.sum(out * probe), out

  (_, out_s), grads_s = jax.value_and_grad(sparse_loss, argnums=(0, 1), has_aux=True)(x, w)
  (_, out_d), grads_d = jax.value_and_grad(dense_loss, argnums=(0, 1), has_aux=True)(x, w)
  valid = np.asarray(lv.valid)
  assert valid.sum() > 20
  assert _max_err(np.asarray(out_s)[valid], np.asarray(out_d)[valid]) <= TOL
  assert _max_err(np.asarray(grads_s[0])[valid], np.asarray(grads_d[0])[valid]) <= TOL
  # Sums of up to 27 * 64 products of unit normals: compare relative to their size.
  scale = max(1.0, float(jnp.max(jnp.abs(grads_d[1]))))
  assert _max_err(grads_s[1], grads_d[1]) <= TOL * scale


def test_fused_is_deterministic_and_padding_reads_nothing():
  """The same inputs give the same bits (the weight gradient's partial sums are added in a fixed
  order, whatever the threads do), and rows that are padding contribute nothing."""
  if not fused.available():
    pytest.skip(NOT_BUILT)
  rng = np.random.default_rng(5)
  scenes = [util.random_scene(rng, 24, 0.3, 4) for _ in range(2)]
  _, geom, _ = util.make_batch(scenes, num_levels=1, headroom=1.3)
  lv = geom.levels[0]
  assert lv.coords.shape[0] > 2048  # several row blocks, so the pool's threads share the work
  x = jnp.asarray(rng.standard_normal((lv.coords.shape[0], 32)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((27, 32, 16)), jnp.float32)
  grad = jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.sin(fused.submanifold_conv_fused(x, w, lv.nbr))), argnums=(0, 1)))
  first, second = grad(x, w), grad(x, w)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  garbage = jnp.where(lv.valid[:, None], x, 1e6)  # padding rows hold anything
  out = fused.submanifold_conv_fused(garbage, w, lv.nbr)
  expected = ops.submanifold_conv_dense(x * lv.valid[:, None], w, lv.nbr)
  valid = np.asarray(lv.valid)
  assert not valid.all()
  assert _max_err(np.asarray(out)[valid], np.asarray(expected)[valid]) <= TOL * 10


@pytest.mark.parametrize('impl', ['pairs', 'fused'])
def test_strided_and_transposed_match_dense(impl):
  if impl == 'fused' and not fused.available():
    pytest.skip(NOT_BUILT)
  strided, transposed = ((fused.strided_conv_fused, fused.transposed_conv_fused) if impl == 'fused'
                         else (ops.strided_conv, ops.transposed_conv))
  batch, geom, _ = util.make_batch(_scenes(2))
  fine, coarse, down = geom.levels[0], geom.levels[1], geom.down[0]
  rng = np.random.default_rng(3)
  x_fine = jnp.asarray(rng.standard_normal((fine.coords.shape[0], 3)), jnp.float32) * fine.valid[:, None]
  x_coarse = jnp.asarray(rng.standard_normal((coarse.coords.shape[0], 3)), jnp.float32) * coarse.valid[:, None]
  w = jnp.asarray(rng.standard_normal((8, 3, 6)), jnp.float32)
  probe_c = jnp.asarray(rng.standard_normal((coarse.coords.shape[0], 6)), jnp.float32)
  probe_f = jnp.asarray(rng.standard_normal((fine.coords.shape[0], 6)), jnp.float32)

  def scatter(level, x):
    return reference.densify(level.coords, x, level.valid, _grid_shape(2, 0 if level is fine else 1))

  down_sparse = lambda x, w: jnp.sum(strided(x, w, down) * coarse.valid[:, None] * probe_c)
  down_dense = lambda x, w: jnp.sum(reference.sample(reference.dense_strided(scatter(fine, x), w),
                                                     coarse.coords, coarse.valid) * probe_c)
  up_sparse = lambda x, w: jnp.sum(transposed(x, w, down) * fine.valid[:, None] * probe_f)
  up_dense = lambda x, w: jnp.sum(reference.sample(reference.dense_transposed(scatter(coarse, x), w),
                                                   fine.coords, fine.valid) * probe_f)

  for sparse_fn, dense_fn, x, level in ((down_sparse, down_dense, x_fine, fine),
                                        (up_sparse, up_dense, x_coarse, coarse)):
    valid = np.asarray(level.valid)
    v_s, g_s = jax.value_and_grad(sparse_fn, argnums=(0, 1))(x, w)
    v_d, g_d = jax.value_and_grad(dense_fn, argnums=(0, 1))(x, w)
    assert abs(float(v_s) - float(v_d)) <= TOL * max(1.0, abs(float(v_d)))
    assert _max_err(np.asarray(g_s[0])[valid], np.asarray(g_d[0])[valid]) <= TOL
    assert _max_err(g_s[1], g_d[1]) <= TOL
  # Forward values per voxel, not just the probed sums.
  out_s = ops.strided_conv(x_fine, w, down)
  out_d = reference.sample(reference.dense_strided(scatter(fine, x_fine), w), coarse.coords, coarse.valid)
  assert _max_err(np.asarray(out_s)[np.asarray(coarse.valid)], np.asarray(out_d)[np.asarray(coarse.valid)]) <= TOL
  out_s = ops.transposed_conv(x_coarse, w, down)
  out_d = reference.sample(reference.dense_transposed(scatter(coarse, x_coarse), w), fine.coords, fine.valid)
  assert _max_err(np.asarray(out_s)[np.asarray(fine.valid)], np.asarray(out_d)[np.asarray(fine.valid)]) <= TOL

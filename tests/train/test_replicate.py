"""steps.replicate lays the state out as the pmapped step returns it, so that the step's second
call does not compile again (flax's jax_utils.replicate uses another mesh axis name)."""
import functools

import jax
import numpy as np

from ws3d_jax.train import steps


@functools.partial(jax.pmap, axis_name=steps.AXIS)
def _bump(tree):
  return jax.tree.map(lambda x: x + 1, tree)


def test_replicated_tree_has_the_layout_the_step_returns():
  tree = {'w': np.arange(6, dtype=np.float32).reshape(2, 3), 'step': np.int32(0)}
  replicated = steps.replicate(tree)
  devices = jax.local_device_count()
  assert replicated['w'].shape == (devices, 2, 3)
  np.testing.assert_array_equal(np.asarray(replicated['w'][0]), tree['w'])
  out = _bump(replicated)
  for a, b in zip(jax.tree.leaves(steps.replicate(tree)), jax.tree.leaves(out)):
    assert a.sharding == b.sharding and a.dtype == b.dtype and a.weak_type == b.weak_type


def test_step_on_its_own_output_is_not_traced_again():
  traces = []

  @functools.partial(jax.pmap, axis_name=steps.AXIS)
  def step(tree):
    traces.append(1)  # runs at trace time only
    return jax.tree.map(lambda x: x * 2, tree)

  state = step(steps.replicate({'w': np.ones(4, np.float32)}))
  state = step(step(state))
  assert len(traces) == 1
  np.testing.assert_array_equal(np.asarray(state['w'][0]), np.full(4, 8.0))

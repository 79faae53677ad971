"""Data parallel training on 2 CPU host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2).

One step on 2 devices equals one step on 1 device over the same combined batch: the gradients are
averaged over the devices, the cross-entropy is normalised over the whole batch's labeled points
(not each device's) and the BatchNorm statistics are summed over the devices. The device count
is fixed when JAX starts, so the checks run in a fresh interpreter.
"""
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a 2-device process compiles and runs one step twice

SCRIPT = textwrap.dedent('''
    import sys
    import jax
    import numpy as np
    import optax
    from configs import synthetic
    from tests.sizes import tiny
    from ws3d_jax import hosts
    from ws3d_jax.data import sources
    from ws3d_jax.data.batch_fitting import fitted_batcher, sample_elements
    from ws3d_jax.train import run_builder, steps, tasks

    assert jax.local_device_count() == 2, jax.devices()
    data_dir, workdir = sys.argv[1:]
    config = tiny(synthetic.get_config('smoke,sup_only'))
    config.data.data_dir = data_dir
    config.train.batch_size = config.train.labeled_batch = 2
    # (The whole 2-device run through the trainer: tests/train/test_multihost.py.)
    # One step by hand, on 2 devices and on 1, from the same state over the same two scenes.
    data = sources.load_experiment(run_builder.data_spec(config), workdir)
    batching = run_builder.batching_spec(config)
    elements = sample_elements(data, batching, config.train.labeled_batch, config.train.unlabeled_batch)
    n = len(elements[0]['semantic'])  # a third of the first scene unlabeled: the devices hold uneven labels
    elements[0] = dict(elements[0], semantic=np.where(np.arange(n) < n // 3, 255, elements[0]['semantic']))
    num_classes = len(data.class_names)
    model, objective = run_builder.ws3d_net(config, num_classes), run_builder.objective(config, num_classes)
    tx = optax.sgd(0.1)  # linear in the gradient: Adam's first step (about lr * sign) would hide differences
    reader = tasks.get('semantic').reader

    def one_step(shards):
        batch = fitted_batcher(batching, elements, model.spec.chunk_sizes(), hosts.Share(local=shards))(elements)
        state = steps.create_train_state(jax.random.PRNGKey(0), model, tx,
                                         jax.tree.map(lambda x: x[0], batch.views[0]), batch.caps)
        put = lambda tree: steps.replicate(tree, jax.local_devices()[:shards])
        state, metrics = steps.train_step(put(state), batch.on_device(), put(jax.random.PRNGKey(1)),
                                          batch.caps, model, objective, reader)
        return jax.device_get((state.params, state.batch_stats)), batch

    (two, two_batch), (one, _) = one_step(2), one_step(1)
    labeled = [int((two_batch.labels[d] != 255).sum()) for d in range(2)]
    assert labeled[0] != labeled[1], labeled  # uneven: a per-device mean would weigh the points differently
    worst = 0.0
    for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one), strict=True):
      np.testing.assert_array_equal(a[0], a[1])  # the replicas stay identical
      worst = max(worst, float(np.abs(a[0] - b[0]).max()))
    initial = steps.create_train_state(jax.random.PRNGKey(0), model, tx,
                                       jax.tree.map(lambda x: x[0], two_batch.views[0]), two_batch.caps)
    moved = max(float(np.abs(a[0] - b).max()) for a, b in zip(jax.tree.leaves(two[0]),
                                                               jax.tree.leaves(initial.params)))
    print('RESULT', worst, moved, labeled[0], labeled[1])
''')


def test_two_devices_step_as_one_device_over_the_combined_batch(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(REPO),
             XLA_FLAGS='--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0')
  result = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path / 'tfds'), str(tmp_path / 'run')], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1200)
  assert result.returncode == 0, result.stderr[-4000:]
  worst, moved, _, _ = map(float, result.stdout.split('RESULT')[1].split())
  assert moved > 1e-3  # the step changed the parameters ...
  # ... and the same way on 1 device, up to float32 summation order
  assert worst < 1e-5 and worst < 1e-3 * moved, f'2 devices and 1 device differ by {worst} after a step of {moved}'


"""Data parallel training on 2 CPU host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2).

The device count is fixed when JAX starts, so the check runs in a fresh interpreter.
"""
import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent('''
    import sys
    import jax
    import numpy as np
    from flax import jax_utils
    from configs import synthetic
    from ws3d_jax.data import sources
    from ws3d_jax.train import parts, steps, tasks, trainer
    from ws3d_jax.train.batching import device_arrays, fitted_batcher, sample_elements

    assert jax.local_device_count() == 2, jax.devices()
    data_dir, workdir = sys.argv[1:]
    config = synthetic.get_config('smoke')
    config.data.data_dir = data_dir
    config.train.labeled_batch, config.train.unlabeled_batch = 2, 2
    config.train.steps, config.train.checkpoint_every = 2, 2
    config.boundary.enabled = False
    summary = trainer.train_and_evaluate(config, workdir)

    # One step by hand: the two devices see different scenes but end with identical replicas.
    data = sources.load_experiment(config, workdir)
    elements = sample_elements(data, config)
    batch = fitted_batcher(config, elements, num_shards=2)(elements)
    assert not np.array_equal(batch['view0']['features'][0], batch['view0']['features'][1])
    model = parts.make_model(config, len(data.class_names))
    tx, _ = parts.make_optimizer(config.optim, 10, 1)
    state = steps.create_train_state(jax.random.PRNGKey(0), model, tx,
                                     jax.tree.map(lambda x: x[0], batch['view0']), batch['caps'])
    state = jax_utils.replicate(state)
    state, metrics = steps.train_step(state, device_arrays(batch), jax_utils.replicate(jax.random.PRNGKey(1)),
                                      batch['caps'], model, parts.make_objective(config, len(data.class_names)),
                                      tasks.get('semantic').reader)
    state = jax.device_get(state)
    for leaf in jax.tree.leaves((state.params, state.batch_stats)):
      np.testing.assert_array_equal(leaf[0], leaf[1])
    initial = jax.tree.leaves(jax.device_get(steps.create_train_state(
        jax.random.PRNGKey(0), model, tx, jax.tree.map(lambda x: x[0], batch['view0']), batch['caps']).params))
    assert any(not np.array_equal(a, b[0]) for a, b in zip(initial, jax.tree.leaves(state.params)))
    print('RESULT', float(metrics['loss'][0]), float(metrics['loss'][1]), summary['miou'])
''')


def test_two_devices_train_in_sync_and_evaluate(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(REPO),
             XLA_FLAGS='--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0')
  result = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path / 'tfds'), str(tmp_path / 'run')], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1200)
  assert result.returncode == 0, result.stderr[-4000:]
  loss0, loss1, miou = map(float, result.stdout.split('RESULT')[1].split())
  assert loss0 == loss1  # metrics are averaged over the devices
  metrics = json.loads((tmp_path / 'run' / 'eval' / 'metrics.json').read_text())
  assert metrics['miou'] == miou and metrics['step'] == 2

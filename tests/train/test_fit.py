"""The training loop's stop on non-finite updates says what is kept, and only what exists."""
import types

import pytest

from ws3d_jax.train import fit

LOOP = fit.Loop(name='WS3D training', step_label='step', compile_name='the step', scalar_prefix='', total_steps=10,
                log_every=2)


def test_stops_only_once_a_step_was_nonfinite():
  checkpoints = types.SimpleNamespace(directory='/w/checkpoints')
  assert fit.stop_if_nonfinite(0, 5, LOOP, 4, checkpoints) is None  # nothing went non-finite: goes on
  with pytest.raises(FloatingPointError, match=r'NaN/inf in 1 step\(s\) up to step 5'):
    fit.stop_if_nonfinite(1, 5, LOOP, 4, checkpoints)


@pytest.mark.parametrize('last_saved, checkpoints, expected', [
    (4, types.SimpleNamespace(directory='/w/checkpoints'), r'last good checkpoint \(step 4, its checksums verified\) '
     r'is kept in /w/checkpoints'),
    # restored from a checkpoint without checksums: never called good
    (4, types.SimpleNamespace(directory='/w/checkpoints', unverified={4}), r'last checkpoint \(step 4\) is kept in '
     r'/w/checkpoints; it has no checksums .* whether it is good is not known'),
    (None, types.SimpleNamespace(directory='/w/checkpoints'), r'No checkpoint was written yet \(/w/checkpoints'),
    (None, None, 'This loop keeps no checkpoints'),
])
def test_the_message_names_the_checkpoint_that_exists(last_saved, checkpoints, expected):
  with pytest.raises(FloatingPointError, match=expected) as e:
    fit.stop_if_nonfinite(3, 7, LOOP, last_saved, checkpoints)
  assert 'WS3D training: the loss, gradient or update became NaN/inf in 3 step(s) up to step 7' in str(e.value)


@pytest.mark.parametrize('losses, diverged', [
    ([2.7, 2.5, 2.1, 1.9], False),  # learning
    ([2.7, 3e2, 2.0, 2.0], False),  # one spike: the median of the last three holds
    ([2.7, 2.0, 6e8, 7e8], True),  # optim.lr=1e4 (seen: 6e8)
    ([0.02, 0.6, 0.7, 0.8], False),  # resumed late, low; the unlabeled terms switch on: below 100x of 1
    ([0.02, 150.0, 160.0], True),
    ([2.7], False),
])
def test_the_divergence_rule(losses, diverged):
  assert fit.diverging(losses) == diverged

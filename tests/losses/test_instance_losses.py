"""PointGroup's losses and offset targets against hand-computed values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ws3d_jax.data.pipeline import offset_targets
from ws3d_jax.losses.instance_objective import offset_losses, score_loss, score_targets


def test_offset_targets_point_to_instance_centre():
  xyz = np.array([[0, 0, 0], [2, 0, 0], [5, 5, 5], [1, 1, 1], [1, 3, 1]], np.float32)
  instance = np.array([1, 1, 0, 4, 4])
  # instance 1: centre (1, 0, 0); instance 4: centre (1, 2, 1); point 2 has no instance.
  expected = np.array([[1, 0, 0], [-1, 0, 0], [0, 0, 0], [0, 1, 0], [0, -1, 0]], np.float32)
  np.testing.assert_allclose(offset_targets(xyz, instance), expected)
  assert not offset_targets(xyz, np.zeros(5, int)).any()


def test_offset_losses_hand_computed():
  pred = np.array([[1, 0, 0], [0, 2, 0], [9, 9, 9]], np.float32)
  target = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 0]], np.float32)
  valid = np.array([True, True, False])
  l1, direction = offset_losses(pred, target, valid)
  # L1: point 0 -> 0; point 1 -> |0|+|2|+|1| = 3; mean over 2 valid points = 1.5.
  # direction: cos = 1 and 0 -> -(1 + 0) / 2.
  assert float(l1) == pytest.approx(1.5)
  assert float(direction) == pytest.approx(-0.5, abs=1e-6)
  l1, direction = offset_losses(pred, target, np.zeros(3, bool))  # no instance point: zero, not NaN
  assert float(l1) == 0.0 and float(direction) == 0.0


def test_a_zero_predicted_offset_has_a_finite_gradient():
  # An offset head whose hidden units are all off for a voxel predicts exactly its bias, 0; the
  # norm's gradient there is NaN (it stopped the instance smoke run at the suite's tiny width).
  pred = np.array([[0, 0, 0], [0, 2, 0]], np.float32)
  target = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
  valid = np.array([True, True])
  l1, direction = offset_losses(pred, target, valid)
  assert float(direction) == pytest.approx(0.0, abs=1e-6)  # cos 0 for the zero prediction (its unit is 0)
  grad = jax.grad(lambda p: sum(offset_losses(p, target, valid)))(jnp.asarray(pred))
  assert np.isfinite(np.asarray(grad)).all()
  # At the zero prediction only the L1 part pulls (toward the target along x: -1 / 2 valid points);
  # the direction's gradient is 0 there.
  l1_grad = jax.grad(lambda p: offset_losses(p, target, valid)[0])(jnp.asarray(pred))
  np.testing.assert_allclose(np.asarray(grad)[0], np.asarray(l1_grad)[0], atol=1e-7)
  assert float(grad[0, 0]) == pytest.approx(-0.5)
  assert np.abs(np.asarray(grad)[1] - np.asarray(l1_grad)[1]).max() > 0.1  # elsewhere the direction does pull


def test_score_targets_and_loss():
  iou = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
  np.testing.assert_allclose(score_targets(iou), [0, 0, 0.5, 1, 1], atol=1e-7)
  logits, targets = np.array([0.0, 2.0, 5.0]), np.array([0.5, 1.0, 0.0])
  valid = np.array([True, True, False])
  bce = lambda x, t: -(t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x))))
  expected = (bce(0.0, 0.5) + bce(2.0, 1.0)) / 2
  assert float(score_loss(logits, targets, valid)) == pytest.approx(expected, rel=1e-5)

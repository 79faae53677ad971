"""WS3D losses against values computed by hand on tiny inputs."""
import jax
import jax.numpy as jnp
import numpy as np

from ws3d_jax.losses import contrast, energy, regions, supervised

IGNORE = 255


def test_region_predictions_max_pool_then_softmax():
  logits = jnp.array([[1.0, 0.0], [3.0, -1.0], [0.0, 2.0], [9.0, 9.0]])
  region = jnp.array([0, 0, 1, 2])  # the last point is padding (R = 2)
  p, c = regions.region_predictions(logits, region, 2)
  e = np.exp([3.0, 0.0])
  np.testing.assert_allclose(p[0], e / e.sum(), rtol=1e-6)  # max over points: (3, 0)
  np.testing.assert_allclose(p[1], np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum(), rtol=1e-6)
  np.testing.assert_allclose(c, p.max(-1))


def test_region_majority_labels():
  labels = jnp.array([1, 1, 2, IGNORE, IGNORE, 0])
  region = jnp.array([0, 0, 0, 1, 1, 3])  # region 2 has no points, 3 is padding (R = 3)
  np.testing.assert_array_equal(regions.region_majority_labels(labels, region, 3, 3, IGNORE), [1, IGNORE, IGNORE])


def _energy_case():
  # Three regions; confidences 0.9, 0.85, 0.6.
  p = jnp.array([[0.9, 0.1], [0.85, 0.15], [0.4, 0.6]])
  c = p.max(-1)
  pairs = jnp.array([[0, 1], [0, 2], [1, 2], [0, 0]])  # last row is padding
  pair_valid = jnp.array([True, True, True, False])
  return p, c, pairs, pair_valid


def test_energy_by_hand_with_and_without_boundary_labels():
  p, c, pairs, pv = _energy_case()
  valid = jnp.array([True, True, True])
  unary = -(np.log(0.9) + np.log(0.85) + np.log(0.6)) / 3
  d01 = np.sqrt(2 * 0.05 ** 2)  # ||(0.9,0.1) - (0.85,0.15)||
  # Only pair (0,1) has both confidences > 0.8.
  # w = 0 everywhere: pull (0,1) together.
  params = energy.EnergyParams()
  e, terms = energy.region_energy(p, c, valid, pairs, pv, jnp.zeros(4), params)
  np.testing.assert_allclose(terms['energy_unary'], unary, rtol=1e-6)
  np.testing.assert_allclose(terms['energy_pairwise'], d01 ** 2 / 3, rtol=1e-5)
  np.testing.assert_allclose(e, unary + d01 ** 2 / 3, rtol=1e-5)
  # (0,1) marked as a boundary pair: pushed to at least eps apart.
  e_b, terms_b = energy.region_energy(p, c, valid, pairs, pv, jnp.array([1.0, 0, 0, 0]), params)
  np.testing.assert_allclose(terms_b['energy_pairwise'], (0.5 - d01) ** 2 / 3, rtol=1e-5)
  # The boundary-label ablation ignores w.
  _, terms_off = energy.region_energy(p, c, valid, pairs, pv, jnp.array([1.0, 0, 0, 0]),
                                      energy.EnergyParams(use_boundary=False))
  np.testing.assert_allclose(terms_off['energy_pairwise'], d01 ** 2 / 3, rtol=1e-5)


def test_energy_confidence_mask_and_normalisation_switches():
  p, c, pairs, pv = _energy_case()
  valid = jnp.array([True, True, True])
  w = jnp.array([0.0, 1.0, 0.0, 0.0])
  d02 = np.sqrt(0.5 ** 2 * 2)
  d01 = np.sqrt(2 * 0.05 ** 2)
  d12 = np.sqrt(0.45 ** 2 * 2)
  # Without H every pair counts: (0,2) is a boundary pair already beyond eps -> 0.
  _, t = energy.region_energy(p, c, valid, pairs, pv, w, energy.EnergyParams(use_confidence_mask=False,
                                                                               normalize=False))
  np.testing.assert_allclose(t['energy_pairwise'], d01 ** 2 + max(0, 0.5 - d02) ** 2 + d12 ** 2, rtol=1e-5)
  np.testing.assert_allclose(t['energy_unary'], -(np.log(0.9) + np.log(0.85) + np.log(0.6)), rtol=1e-6)
  e, t = energy.region_energy(p, c, valid, pairs, pv, w, energy.EnergyParams(use_pairwise=False))
  assert float(t['energy_pairwise']) == 0.0
  # Identical predictions on a pair must give finite gradients (sqrt at 0).
  g = jax.grad(lambda q: energy.region_energy(q, q.max(-1), valid, pairs, pv, jnp.ones(4),
                                              energy.EnergyParams(gamma=0.0))[0])(jnp.full((3, 2), 0.5))
  assert np.isfinite(np.asarray(g)).all()


def _unit(v):
  v = np.asarray(v, np.float64)
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_contrast_by_hand_positives_and_negatives():
  f1 = jnp.asarray(_unit([[1, 0], [0, 1], [1, 1]]), jnp.float32)
  f2 = jnp.asarray(_unit([[1, 0.2], [0.1, 1], [1, -1]]), jnp.float32)
  labels1 = jnp.array([0, 1, 0])
  labels2 = jnp.array([0, 1, 1])
  anchors = jnp.array([True, True, False])
  candidates = jnp.array([True, True, True])
  params = contrast.ContrastParams(tau=0.5)
  loss, count = contrast.contrast_loss(f1, f2, labels1, labels2, anchors, candidates, jnp.zeros(3, int),
                                       jax.random.PRNGKey(0), params)
  s = np.asarray(f1, np.float64) @ np.asarray(f2, np.float64).T / 0.5
  # Anchor 0 (label 0): negatives = regions of view 2 labelled differently = {1, 2}.
  l0 = -np.log(np.exp(s[0, 0]) / (np.exp(s[0, 0]) + np.exp(s[0, 1]) + np.exp(s[0, 2])))
  # Anchor 1 (label 1): negatives = {0} (region 2 has label 1 too, so it is not a negative).
  l1 = -np.log(np.exp(s[1, 1]) / (np.exp(s[1, 1]) + np.exp(s[1, 0])))
  np.testing.assert_allclose(loss, (l0 + l1) / 2, rtol=1e-5)
  assert int(count) == 2
  # Same-scene negatives: put region 2 in another scene; anchor 0 loses it as a negative.
  loss_s, _ = contrast.contrast_loss(f1, f2, labels1, labels2, anchors, candidates, jnp.array([0, 0, 1]),
                                     jax.random.PRNGKey(0), contrast.ContrastParams(tau=0.5, same_scene_negatives=True))
  l0s = -np.log(np.exp(s[0, 0]) / (np.exp(s[0, 0]) + np.exp(s[0, 1])))
  np.testing.assert_allclose(loss_s, (l0s + l1) / 2, rtol=1e-5)


def test_unsupervised_masks_follow_confidence():
  p1 = jnp.array([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])
  p2 = jnp.array([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7]])
  valid = jnp.array([True, True, True])
  l1, l2, anchors, cands = contrast.unsupervised_masks(p1, p1.max(-1), p2, p2.max(-1), valid,
                                                       contrast.ContrastParams(gamma=0.8))
  np.testing.assert_array_equal(anchors, [True, False, False])
  np.testing.assert_array_equal(cands, [True, True, False])
  np.testing.assert_array_equal(l2, [0, 0, 1])


def test_contrast_sampling_bounds_the_matrix():
  rng = np.random.default_rng(0)
  f = jnp.asarray(_unit(rng.standard_normal((50, 4))), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 3, 50))
  ok = jnp.ones(50, bool)
  full, n_full = contrast.contrast_loss(f, f, labels, labels, ok, ok, jnp.zeros(50, int), jax.random.PRNGKey(0),
                                        contrast.ContrastParams(max_regions=64))
  sub, n_sub = contrast.contrast_loss(f, f, labels, labels, ok, ok, jnp.zeros(50, int), jax.random.PRNGKey(0),
                                      contrast.ContrastParams(max_regions=16))
  assert int(n_full) == 50 and int(n_sub) == 16
  assert np.isfinite(float(sub)) and abs(float(sub) - float(full)) < float(full)


def test_focal_loss_by_hand():
  z = jnp.array([2.0, -1.0, 0.5])
  g = jnp.array([1, 0, 1])
  b = 1 / (1 + np.exp(-np.asarray(z, np.float64)))
  terms = [-(1 - b[0]) ** 2 * np.log(b[0]), -(b[1] ** 2) * np.log(1 - b[1]), -(1 - b[2]) ** 2 * np.log(b[2])]
  np.testing.assert_allclose(supervised.focal_loss(z, g, jnp.array([True, True, False])),
                             (terms[0] + terms[1]) / 2, rtol=1e-6)


def test_cross_entropy_by_hand():
  logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
  labels = jnp.array([0, 0, IGNORE])
  expected = np.mean([np.log(1 + np.exp(-2.0)), np.log(1 + np.exp(1.0))])
  np.testing.assert_allclose(supervised.cross_entropy(logits, labels, IGNORE), expected, rtol=1e-6)

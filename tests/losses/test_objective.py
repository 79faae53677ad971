"""The joint objective routes each term to its branch: hand-computed values on a tiny batch."""
import types

import jax
import jax.numpy as jnp
import numpy as np

from ws3d_jax.losses.contrast import ContrastParams
from ws3d_jax.losses.energy import EnergyParams
from ws3d_jax.losses.objective import BoundaryObjective, Objective
from ws3d_jax.losses.schedule import Ramp
from ws3d_jax.losses.targets import Regions, Targets
from ws3d_jax.models.minkunet import NetOutputs

IGNORE = 255


def _batch():
  """Two scenes in one batch: scene 0 labeled (regions 0, 1), scene 1 unlabeled (regions 2, 3).
  Points: two per region, then two padding points (region id R = 5, one padding region)."""
  region_id = jnp.array([0, 0, 1, 1, 2, 2, 3, 3, 5, 5])
  labels = jnp.array([0, 0, 1, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE])
  return Targets(labels=labels, regions=Regions(
      id=region_id,
      valid=jnp.array([True, True, True, True, False]),
      labeled=jnp.array([True, True, False, False, False]),
      scene=jnp.array([0, 0, 1, 1, -1]),
      # (0,1) labeled pair, (2,3) unlabeled pair marked as a boundary pair, one padding row.
      pairs=jnp.array([[0, 1], [2, 3], [5, 5]]),
      pair_valid=jnp.array([True, True, False]),
      pair_boundary=jnp.array([0.0, 1.0, 0.0])))


def _outputs(seed):
  rng = np.random.default_rng(seed)
  logits = jnp.asarray(rng.normal(0, 2, (10, 3)), jnp.float32)
  emb = jnp.asarray(rng.normal(0, 1, (6, 4)), jnp.float32)  # voxel embeddings of the one stage
  return NetOutputs(logits=logits, voxel_logits=None, features=None, stages=(), embeddings=(emb,), contrast_stages=(0,))


def _geom():
  # Point i reads voxel i // 2 (one voxel per region); padding points read the padding row.
  return types.SimpleNamespace(point2voxel=(jnp.array([0, 0, 1, 1, 2, 2, 3, 3, 6, 6]),))


def _region_probs(logits, region_id, r):
  pooled = np.stack([np.asarray(logits)[np.asarray(region_id) == k].max(0) for k in range(r)])
  e = np.exp(pooled - pooled.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_energy_reads_only_unlabeled_regions_and_pairs():
  batch, outs = _batch(), [_outputs(0), _outputs(1)]
  obj = Objective(num_classes=3, w_ce=0.0, w_sup_contrast=0.0, w_contrast=0.0,
                  energy=EnergyParams(gamma=0.0))  # every region confident: H = 1
  loss, terms = obj(outs, [_geom(), _geom()], batch, jax.random.PRNGKey(0))
  expected = 0.0
  for o in outs:
    p = _region_probs(o.logits, batch.regions.id, 4)
    unary = -(np.log(p[2].max()) + np.log(p[3].max())) / 2  # mean over the 2 unlabeled regions
    d = np.linalg.norm(p[2] - p[3])
    pairwise = max(0.5 - d, 0.0) ** 2  # the one unlabeled pair is a boundary pair: pushed apart
    expected += unary + pairwise
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  # Labeled points get no gradient from the energy.
  grad = jax.grad(lambda l: obj([outs[0].replace(logits=l), outs[1]], [_geom(), _geom()], batch,
                                jax.random.PRNGKey(0))[0])(outs[0].logits)
  assert np.all(np.asarray(grad)[:4] == 0) and np.any(np.asarray(grad)[4:8] != 0)


def test_cross_entropy_averages_labeled_points_over_the_two_views():
  batch, outs = _batch(), [_outputs(2), _outputs(3)]
  obj = Objective(num_classes=3, w_sup_contrast=0.0, w_energy=0.0, w_contrast=0.0)
  loss, terms = obj(outs, [_geom(), _geom()], batch, jax.random.PRNGKey(0))
  expected = 0.0
  for o in outs:
    logits = np.asarray(o.logits)[:3]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected += -(logp[0, 0] + logp[1, 0] + logp[2, 1]) / 3 / 2
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert set(terms) == {'ce'}


def test_contrast_anchors_are_confident_unlabeled_regions_and_sce_labeled_ones():
  batch, outs = _batch(), [_outputs(4), _outputs(5)]
  obj = Objective(num_classes=3, w_ce=0.0, w_energy=0.0,
                  contrast=ContrastParams(gamma=0.0, tau=0.5))
  loss, terms = obj(outs, [_geom(), _geom()], batch, jax.random.PRNGKey(0))
  assert float(terms['contrast_anchors']) == 2  # regions 2 and 3
  assert float(terms['sup_contrast_anchors']) == 2  # regions 0 and 1 (majority labels 0 and 1)
  # SCE by hand: anchors 0 and 1; region 0's negative is region 1 (other label) and vice versa.
  f = []
  for o in outs:
    pooled = np.stack([np.asarray(o.embeddings[0])[k] for k in range(2)])
    f.append(pooled / np.linalg.norm(pooled, axis=-1, keepdims=True))
  sim = f[0] @ f[1].T / 0.5
  sce = np.mean([np.log(np.exp(sim[a]).sum()) - sim[a, a] for a in range(2)])
  np.testing.assert_allclose(terms['sup_contrast_stage0'], sce, rtol=1e-5)
  np.testing.assert_allclose(loss, terms['contrast'] + terms['sup_contrast'], rtol=1e-6)


def test_boundary_focal_loss_ignores_unlabeled_points():
  logits = jnp.array([[2.0], [-1.0], [5.0]])
  batch = Targets(labels=jnp.array([1, 0, IGNORE]))
  loss, _ = BoundaryObjective(alpha=2.0)([NetOutputs(logits=logits, voxel_logits=None, features=None, stages=())], None, batch, None)
  b = 1 / (1 + np.exp(-np.array([2.0, -1.0])))
  expected = (-(1 - b[0]) ** 2 * np.log(b[0]) - b[1] ** 2 * np.log(1 - b[1])) / 2
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_ramp_is_zero_in_warmup_then_the_sigmoid_ramp_then_one():
  ramp = Ramp(warmup_steps=10, rampup_steps=20)
  for step, expected in ((0, 0.0), (9, 0.0), (10, np.exp(-5.0)), (20, np.exp(-5 * 0.25)), (30, 1.0), (99, 1.0)):
    np.testing.assert_allclose(float(ramp(step)), expected, rtol=1e-6, err_msg=str(step))
  assert float(Ramp()(0)) == 1.0 and float(Ramp(warmup_steps=5)(4)) == 0.0 and float(Ramp(warmup_steps=5)(5)) == 1.0


def test_ramp_scales_only_the_unlabeled_terms():
  batch, outs = _batch(), [_outputs(4), _outputs(5)]
  obj = Objective(num_classes=3, w_sup_contrast=0.5, energy=EnergyParams(gamma=0.0),
                  contrast=ContrastParams(gamma=0.0), ramp=Ramp(warmup_steps=10, rampup_steps=10))
  full, terms = obj(outs, [_geom(), _geom()], batch, jax.random.PRNGKey(0))
  labeled_only = terms['ce'] + 0.5 * terms['sup_contrast']
  unlabeled = terms['energy'] + terms['contrast']
  assert float(unlabeled) > 0
  np.testing.assert_allclose(full, labeled_only + unlabeled, rtol=1e-5)  # no step: full weight
  warm, t = obj(outs, [_geom(), _geom()], batch, jax.random.PRNGKey(0), step=3)
  np.testing.assert_allclose(warm, labeled_only, rtol=1e-5)
  assert float(t['unlabeled_weight']) == 0.0
  mid, _ = obj(outs, [_geom(), _geom()], batch, jax.random.PRNGKey(0), step=15)
  np.testing.assert_allclose(mid, labeled_only + np.exp(-5 * 0.25) * unlabeled, rtol=1e-5)

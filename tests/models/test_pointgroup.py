"""PointGroup's ScoreNet against a per-proposal numpy loop, and the proposal packing."""
import jax
import jax.numpy as jnp
import numpy as np

from ws3d_jax.models.pointgroup import Proposals, ScoreNet
from ws3d_jax.train.tasks.instance_segmentation import pack_proposals


def _reference(params, feats, xyz, members):
  dense = lambda x, p: x @ np.asarray(p['kernel']) + np.asarray(p['bias'])
  relu = lambda x: np.maximum(x, 0)
  out = []
  for idx in members:
    x = np.concatenate([feats[idx], xyz[idx] - xyz[idx].mean(0)], 1)
    h = relu(dense(relu(dense(x, params['Dense_0'])), params['Dense_1'])).max(0)
    out.append(dense(relu(dense(h, params['Dense_2'])), params['Dense_3'])[0])
  return np.array(out)


def test_scorenet_matches_a_per_proposal_loop_and_ignores_padding():
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(40, 6)).astype(np.float32)
  xyz = rng.normal(size=(40, 3)).astype(np.float32)
  # Point 7 is in two proposals (one from each coordinate set), as PointGroup's dual sets allow.
  members = [np.array([0, 3, 7, 9]), np.array([7, 8, 20, 21, 22]), np.array([30])]
  arrays, dropped = pack_proposals([(m, 0.5) for m in members], max_proposals=6, members=80)
  assert dropped == 0 and arrays.valid.sum() == 3
  net = ScoreNet(hidden=8)
  proposals = jax.tree.map(jnp.asarray, arrays)
  params = net.init(jax.random.PRNGKey(1), feats, xyz, proposals)['params']
  scores = np.asarray(net.apply({'params': params}, feats, xyz, proposals))
  assert scores.shape == (6,)
  np.testing.assert_allclose(scores[:3], _reference(params, feats, xyz, members), rtol=1e-5, atol=1e-5)
  # The same proposals with a different padding capacity score the same.
  wider, _ = pack_proposals([(m, 0.5) for m in members], max_proposals=16, members=200)
  again = np.asarray(net.apply({'params': params}, feats, xyz, jax.tree.map(jnp.asarray, wider)))
  np.testing.assert_allclose(again[:3], scores[:3], rtol=1e-6)


def test_pack_proposals_keeps_the_first_in_priority_order_and_counts_the_rest():
  groups = [(np.arange(5), 1.0), (np.arange(4), 0.2), (np.arange(3), 0.0)]
  arrays, dropped = pack_proposals(groups, max_proposals=2, members=20)
  assert dropped == 1 and arrays.valid.tolist() == [True, True]
  np.testing.assert_allclose(arrays.target, [1.0, 0.2])
  assert (arrays.id < 2).sum() == 9
  arrays, dropped = pack_proposals(groups, max_proposals=3, members=8)  # membership capacity runs out
  assert dropped == 2 and arrays.valid.tolist() == [True, False, False]
  empty = Proposals.empty(4, 10)
  assert not empty.valid.any() and (empty.id == 4).all()

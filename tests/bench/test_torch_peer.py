"""The PyTorch MinkUNet peer against the JAX model: loaded with the same parameters, on the same
maps, it must give the same logits in eval mode (running statistics) and in train mode (batch
statistics), and the same gradient of the benchmark's loss. This is what makes the network-level
ratio of the benchmark a comparison of the same computation."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ws3d_jax.bench.prepared import geometry_args, geometry_builder, prepare
from ws3d_jax.bench.scenes import Scene
from ws3d_jax.bench.torch_peer import TorchMinkUNet
from ws3d_jax.data import synthetic
from ws3d_jax.models import minkunet

torch = pytest.importorskip('torch', reason='torch is the optional benchmark peer (pip install torch==2.13.0)')


@pytest.fixture(scope='module')
def case():
  room = synthetic.make_room(0, num_points=4000)
  scene = Scene('room', room['xyz'], room['features'][:, :3], 0.1, 20, 'synthetic')
  prep = prepare(scene, minkunet.NUM_LEVELS, headroom=1.1, growth=1.25)
  spec = minkunet.backbone_spec('minkunet14')
  geom = geometry_builder(prep.caps, spec.chunk_sizes(), minkunet.NUM_LEVELS, {}, 'g')(*geometry_args(prep))
  model = minkunet.MinkUNet(num_classes=20, spec=spec)
  feats = prep.arrays['features']
  variables = model.init(jax.random.PRNGKey(0), feats, geom)
  # running statistics away from (0, 1), so eval mode tests that they are carried over
  stats = jax.tree_util.tree_map(lambda a: a + 0.5 * jnp.abs(jnp.sin(jnp.arange(a.shape[0]) + 1.0)),
                                 variables['batch_stats'])
  variables = {'params': variables['params'], 'batch_stats': stats}
  return prep, spec, geom, model, feats, variables


def _peer(case):
  prep, spec, geom, _, feats, variables = case
  net = TorchMinkUNet(torch, jax.device_get(variables), geom, prep.counts.voxels, spec)
  return net, torch.from_numpy(np.array(feats)[:net.n[0]])


@pytest.mark.parametrize('train', [False, True])
def test_logits_match(case, train):
  _, _, geom, model, feats, variables = case
  out = model.apply(variables, feats, geom, train=train, mutable=['batch_stats'] if train else False)
  ours = np.asarray((out[0] if train else out).logits)[np.asarray(geom.point_valid)]
  net, x = _peer(case)
  with torch.no_grad():
    theirs = net.point_logits(x, train=train).numpy()
  assert ours.shape == theirs.shape
  np.testing.assert_allclose(theirs, ours, atol=1e-4 * np.abs(ours).max())


def test_loss_gradient_matches(case):
  prep, _, geom, model, feats, variables = case
  valid = np.asarray(geom.point_valid)
  labels = np.random.default_rng(0).integers(0, 20, valid.shape[0]).astype(np.int32)

  def loss(params):
    out, _ = model.apply({'params': params, 'batch_stats': variables['batch_stats']}, feats, geom, train=True,
                         mutable=['batch_stats'])
    ce = optax.softmax_cross_entropy_with_integer_labels(out.logits, labels)
    return jnp.sum(ce * valid) / valid.sum()

  grads = jax.grad(loss)(variables['params'])
  net, x = _peer(case)
  theirs = torch.nn.functional.cross_entropy(net.point_logits(x, train=True), torch.from_numpy(labels[valid]).long())
  theirs.backward()
  np.testing.assert_allclose(float(theirs), float(loss(variables['params'])), rtol=1e-5)
  # Elementwise only after the last ReLU of the path: a pre-activation within ~1e-7 of zero
  # flips its gate under float32 reordering (2 of 169k entries at level 1 in this case), and a
  # flipped gate changes every gradient upstream of it by up to a few per cent of its largest
  # entry. Upstream of that, every parameter's gradient must point the same way (cosine), which
  # a wrong backward of any layer breaks by far more.
  for name in ('Dense_0', 'BasicBlock_7'):
    for path, g_ours in jax.tree_util.tree_flatten_with_path(grads[name])[0]:
      node = net.params[name]
      for k in path:
        node = node[k.key]
      np.testing.assert_allclose(node.grad.numpy(), np.asarray(g_ours), atol=1e-5 * np.abs(g_ours).max(),
                                 err_msg=f'{name}{path}')
  for path, g_ours in jax.tree_util.tree_flatten_with_path(grads)[0]:
    node = net.params
    for k in path:
      node = node[k.key]
    a, b = np.asarray(g_ours).ravel(), node.grad.numpy().ravel()
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    assert cosine > 0.999, (jax.tree_util.keystr(path), cosine)

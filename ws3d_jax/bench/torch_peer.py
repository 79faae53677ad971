"""The PyTorch eager peers of the sparse-convolution benchmark, on the engine's own kernel maps.

* ``TorchLayer``: one submanifold 3x3x3 layer: centre mm, then per kernel offset
  index_select -> mm -> index_add_ (how spconv's native CPU path and torchsparse work).
* ``TorchMinkUNet``: the whole MinkUNet (ws3d_jax.models.minkunet, any preset) written as the
  same layer list in PyTorch, loaded with the JAX model's parameters and BatchNorm statistics,
  so that its logits can be checked against ours before either is timed. It runs on real rows
  only (no padding), as a PyTorch codebase would.

Both take the neighbour and down maps from a built ``Geometry``: the peers compare compute, not
kernel-map building.
"""
from __future__ import annotations

import math

import numpy as np

from ws3d_jax.bench.harness import time_calls

CENTER = 13


def spconv_status() -> str:
  try:
    import spconv.pytorch  # noqa: F401
    return 'importable (not wired into this benchmark yet)'
  except Exception as e:  # noqa: BLE001
    return f'not importable: {type(e).__name__}: {e}'


def torch_or_reason():
  """(torch module, None) or (None, why it cannot be used)."""
  try:
    import torch
    return torch, None
  except Exception as e:  # noqa: BLE001
    return None, f'torch not importable: {type(e).__name__}: {e}'


def offset_maps(torch, nbr: np.ndarray, num_real: int) -> list:
  """[(offset, input rows, output rows)] over the real rows of an (N_cap, 27) neighbour table."""
  n_cap = nbr.shape[0]
  nbr = nbr[:num_real]
  maps = []
  for d in range(27):
    if d == CENTER:
      continue
    present = nbr[:, d] < n_cap
    if present.any():
      maps.append((d, torch.from_numpy(nbr[present, d].astype(np.int64)),
                   torch.from_numpy(np.nonzero(present)[0].astype(np.int64))))
  return maps


def submanifold(x, w, maps):
  out = x @ w[CENTER]
  for d, i, o in maps:
    out = out.index_add(0, o, x.index_select(0, i) @ w[d])
  return out


class TorchLayer:
  """One submanifold layer on fixed random inputs; ``bench`` times forward and forward+backward."""

  def __init__(self, torch, nbr: np.ndarray, num_real: int):
    self.torch = torch
    self.maps = offset_maps(torch, nbr, num_real)
    self.n = num_real

  def functions(self, channels: int, seed: int = 0):
    """(forward, forward_backward) closures on fixed random inputs."""
    torch = self.torch
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(self.n, channels, generator=g)
    w = torch.randn(27, channels, channels, generator=g) * math.sqrt(2.0 / (27 * channels))
    probe = torch.randn(self.n, channels, generator=g)

    def fwd():
      with torch.no_grad():
        return submanifold(x, w, self.maps)

    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()

    def fwd_bwd():
      xr.grad = wr.grad = None
      loss = (submanifold(xr, wr, self.maps) * probe).sum()
      loss.backward()
      return xr.grad, wr.grad

    return fwd, fwd_bwd

  def bench(self, channels: int, warmup: int, reps: int) -> dict:
    fwd, fwd_bwd = self.functions(channels)
    self.last_functions = (fwd, fwd_bwd)
    out = {'threads': self.torch.get_num_threads(),
           'impl': 'torch eager: x@W[13]; per offset index_select -> mm -> index_add; autograd backward'}
    out['forward'] = time_calls(fwd, warmup, reps)
    out['forward_backward'] = time_calls(fwd_bwd, warmup, reps)
    return out


def make_layer_peer(nbr: np.ndarray, num_real: int):
  torch, why = torch_or_reason()
  return (TorchLayer(torch, nbr, num_real), None) if torch else (None, why)


# --- the whole network -----------------------------------------------------------------------------

class _Down:
  """The 2x2x2 links between a real fine level and the next, missing children -> zero row."""

  def __init__(self, torch, down, n_fine: int, n_coarse: int):
    parent = np.asarray(down.parent)[:n_fine].astype(np.int64)
    slot = np.asarray(down.slot)[:n_fine].astype(np.int64)
    children = np.full((n_coarse, 8), n_fine, np.int64)
    children[parent, slot] = np.arange(n_fine)
    self.children = torch.from_numpy(children)
    self.parent, self.slot = torch.from_numpy(parent), torch.from_numpy(slot)


class TorchMinkUNet:
  """ws3d_jax's MinkUNet as PyTorch eager ops on the same kernel maps and parameters.

  ``variables`` are the flax variables of ``minkunet.MinkUNet(spec=spec)``; the module layout
  (auto-named ``SubMConv3d_0``, ``BasicBlock_3``, ...) is walked in the order the flax model
  creates it, so a layer list that changed there fails here by a missing key, not silently.
  """

  def __init__(self, torch, variables, geom, voxels_per_level, spec, requires_grad: bool = True):
    self.torch = torch
    self.spec = spec
    self.n = [int(v) for v in voxels_per_level]
    self.params = _to_torch(torch, variables['params'], requires_grad)
    self.stats = _to_torch(torch, variables['batch_stats'], False)
    self.maps = [offset_maps(torch, np.asarray(lv.nbr), n) for lv, n in zip(geom.levels, self.n)]
    self.down = [_Down(torch, d, self.n[l], self.n[l + 1]) for l, d in enumerate(geom.down)]
    p2v = np.asarray(geom.point2voxel[0])
    self.point_rows = torch.from_numpy(np.nonzero(np.asarray(geom.point_valid))[0].astype(np.int64))
    self.point2voxel = torch.from_numpy(p2v[np.asarray(geom.point_valid)].astype(np.int64))

  def parameters(self) -> list:
    return [p for p in _leaves(self.params) if p.requires_grad]

  def _bn(self, x, p, s, train):
    # flax momentum 0.9 on the old value == torch momentum 0.1 on the new one
    return self.torch.nn.functional.batch_norm(x, s['mean'], s['var'], p['scale'], p['bias'], training=train,
                                               momentum=0.1, eps=1e-5)

  def _strided(self, x, w, down):
    zero = x.new_zeros((1, x.shape[1]))
    return self.torch.einsum('psc,sco->po', self.torch.cat([x, zero])[down.children], w)

  def _transposed(self, x, w, down):
    return self.torch.einsum('pc,sco->pso', x, w)[down.parent, down.slot]

  def _block(self, x, p, s, level, train):
    relu = self.torch.relu
    y = submanifold(x, p['SubMConv3d_0']['kernel'], self.maps[level])
    y = relu(self._bn(y, p['MaskedBatchNorm_0'], s['MaskedBatchNorm_0'], train))
    y = submanifold(y, p['SubMConv3d_1']['kernel'], self.maps[level])
    y = self._bn(y, p['MaskedBatchNorm_1'], s['MaskedBatchNorm_1'], train)
    residual = x
    if 'Dense_0' in p:
      residual = self._bn(x @ p['Dense_0']['kernel'], p['MaskedBatchNorm_2'], s['MaskedBatchNorm_2'], train)
    return relu(y + residual)

  def voxel_logits(self, feats, train: bool):
    """feats: (real voxels of level 0, Cin) -> (real voxels, classes)."""
    torch, p, s, spec = self.torch, self.params, self.stats, self.spec
    bn_i, block_i = iter(range(9)), iter(range(sum(spec.blocks)))

    def bn(x):
      i = f'MaskedBatchNorm_{next(bn_i)}'
      return torch.relu(self._bn(x, p[i], s[i], train))

    def blocks(x, stage, level):
      for _ in range(spec.blocks[stage]):
        k = f'BasicBlock_{next(block_i)}'
        x = self._block(x, p[k], s[k], level, train)
      return x

    x = bn(submanifold(feats, p['SubMConv3d_0']['kernel'], self.maps[0]))
    stages = [x]
    for i in range(4):
      x = bn(self._strided(x, p[f'StridedConv3d_{i}']['kernel'], self.down[i]))
      x = blocks(x, i, i + 1)
      stages.append(x)
    for j in range(4):
      level = 3 - j
      x = bn(self._transposed(x, p[f'TransposedConv3d_{j}']['kernel'], self.down[level]))
      x = blocks(torch.cat([x, stages[level]], dim=1), 4 + j, level)
    return x @ p['Dense_0']['kernel'] + p['Dense_0']['bias']

  def point_logits(self, feats, train: bool):
    return self.voxel_logits(feats, train)[self.point2voxel]

  def functions(self, feats: np.ndarray, labels: np.ndarray, lr: float = 1e-3):
    """(forward, train_step) closures: eval-mode forward; train-mode forward + cross-entropy over
    the valid points + backward + Adam, the same step as the benchmark's JAX train step."""
    torch = self.torch
    x = torch.from_numpy(np.ascontiguousarray(feats[:self.n[0]], np.float32))
    y = torch.from_numpy(np.asarray(labels)[self.point_rows.numpy()].astype(np.int64))
    opt = torch.optim.Adam(self.parameters(), lr=lr)

    def forward():
      with torch.no_grad():
        return self.point_logits(x, train=False)

    def train_step():
      opt.zero_grad(set_to_none=True)
      loss = torch.nn.functional.cross_entropy(self.point_logits(x, train=True), y)
      loss.backward()
      opt.step()
      return loss

    return forward, train_step


def _to_torch(torch, tree, requires_grad):
  if isinstance(tree, dict) or hasattr(tree, 'items'):
    return {k: _to_torch(torch, v, requires_grad) for k, v in tree.items()}
  t = torch.from_numpy(np.array(tree, np.float32))
  return t.requires_grad_() if requires_grad else t


def _leaves(tree):
  if isinstance(tree, dict):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield tree

"""The sparse convolutions as one fused CPU kernel (``native/subm_conv.cc``, an XLA FFI call).

The pure-JAX ``pairs`` dataflow (ops.py) writes every gathered input row, every product and
every scatter to memory; at the label-efficiency benchmark's channel counts (8-64) those arrays,
not the arithmetic, are the step's time. The fused kernel reads each output row's neighbours
through ``Level.nbr`` and keeps the sums in registers; its backward is the same kernel over the
mirrored table with transposed weights, and a second kernel for the weight gradient. The strided
2x2x2 convolution and its transpose run the same two kernels over tables of the 8 child slots.

The kernel is compiled by ``bash setup.sh`` (``python -m ws3d_jax.sparse.fused --build``) into
``native/_build/``, under a name that carries a hash of its source, so an edited source is never
served by an old binary. Where it is absent (no C++ compiler, a GPU install, a source newer
than the build) ``available()`` is False and the network runs the pure-JAX ``pairs`` path,
which stays the reference in the tests.
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ws3d_jax.sparse.kernel_map import DownMap

_SOURCE = Path(__file__).parent / 'native' / 'subm_conv.cc'
_BUILD_DIR = Path(__file__).parent / 'native' / '_build'
_TARGETS = {'ws3d_subm_conv': 'Ws3dSubmConv', 'ws3d_subm_conv_wgrad': 'Ws3dSubmConvWgrad'}
_registered: list = []  # the loaded library, once registered (kept alive for the process)
_warned: list = []  # the missing build is said once a process


def library_path() -> Path:
  digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:12]
  return _BUILD_DIR / f'libws3d_subm_conv-{digest}.so'


def build(compiler: str = 'g++') -> Path:
  """Compiles the kernel for this machine's CPU; returns the library's path."""
  out = library_path()
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = out.with_suffix('.so.tmp')
  cmd = [compiler, '-O3', '-march=native', '-mprefer-vector-width=512', '-std=c++17', '-shared', '-fPIC', '-w',
         f'-I{jax.ffi.include_dir()}', str(_SOURCE), '-o', str(tmp)]
  subprocess.run(cmd, check=True)
  os.replace(tmp, out)  # never a half-written library under the name the loader trusts
  for old in _BUILD_DIR.glob('libws3d_subm_conv-*.so'):
    if old != out:
      old.unlink()  # builds of earlier sources: nothing loads them again
  return out


def available() -> bool:
  """True when the kernel is built for the current source and the CPU is jax's backend."""
  if _registered:
    return True
  if os.environ.get('WS3D_NO_FUSED') == '1' or jax.default_backend() != 'cpu':
    return False
  path = library_path()
  if not path.exists():
    return False
  lib = ctypes.cdll.LoadLibrary(str(path))
  for name, symbol in _TARGETS.items():
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform='cpu')
  _registered.append(lib)
  return True


def resolve(impl, dtype):
  """The dataflow per stride that ``model.impl`` names: 'auto' is 'fused' where the kernel is built
  and the compute dtype is float32 (the kernel's only one), else the pure-JAX 'pairs'."""
  if isinstance(impl, str):
    if impl != 'auto':
      return impl
    if dtype != jnp.float32:
      return 'pairs'  # the kernel's only dtype is float32
    if available():
      return 'fused'
    if jax.default_backend() == 'cpu' and os.environ.get('WS3D_NO_FUSED') != '1' and not _warned:
      _warned.append(True)
      logging.warning('the fused CPU kernel is not built for this checkout (%s): the network runs the '
                      'slower pure-JAX path; `bash setup.sh` builds it', library_path().name)
    return 'pairs'
  return tuple(resolve(i, dtype) for i in impl)


def _conv(x, weight, nbr, mirror: bool):
  out = jax.ShapeDtypeStruct((nbr.shape[0], weight.shape[2]), jnp.float32)
  return jax.ffi.ffi_call('ws3d_subm_conv', out)(x, weight, nbr, mirror=np.int32(mirror))


def _weight_grad(x, g, table, weight):
  return jax.ffi.ffi_call('ws3d_subm_conv_wgrad', jax.ShapeDtypeStruct(weight.shape, jnp.float32))(x, g, table)


@jax.custom_vjp
def submanifold_conv_fused(x, weight, nbr):
  """x (N, Cin) float32, weight (27, Cin, Cout) float32, nbr (N, 27) int32 (N: missing) ->
  (N, Cout): the same function as ``ops.submanifold_conv_dense``."""
  if not available():
    raise RuntimeError('the fused sparse kernel is not built: run `bash setup.sh` '
                       "(or `python -m ws3d_jax.sparse.fused --build`), or use impl='pairs'")
  return _conv(x, weight, nbr, mirror=False)


def _fwd(x, weight, nbr):
  return submanifold_conv_fused(x, weight, nbr), (x, weight, nbr)


def _bwd(res, g):
  x, weight, nbr = res
  # j is i's neighbour at offset k iff i is j's at 26 - k: the input gradient is the forward
  # over the mirrored table with each offset's weight transposed.
  grad_x = _conv(g, jnp.swapaxes(weight, 1, 2), nbr, mirror=True)
  return grad_x, _weight_grad(x, g, nbr, weight), None


submanifold_conv_fused.defvjp(_fwd, _bwd)


# --- the strided 2x2x2 convolution and its transpose, over tables of the 8 child slots ---------

@jax.custom_vjp
def _table_conv(x, weight, forward, backward):
  """out[i] = sum_k x[forward[i, k]] @ weight[k], an entry of ``forward`` outside the rows of x
  reading nothing; ``backward`` holds the same links from the input side (backward[j, k] = i
  iff forward[i, k] = j)."""
  return _conv(x, weight, forward, mirror=False)


def _table_fwd(x, weight, forward, backward):
  return _table_conv(x, weight, forward, backward), (x, weight, forward, backward)


def _table_bwd(res, g):
  x, weight, forward, backward = res
  grad_x = _conv(g, jnp.swapaxes(weight, 1, 2), backward, mirror=False)
  return grad_x, _weight_grad(x, g, forward, weight), None, None


_table_conv.defvjp(_table_fwd, _table_bwd)


def _slot_tables(down: DownMap):
  """(parents (N_fine, 8): a child's parent in its slot's column, children (N_coarse, 8): each
  parent's child in each slot); absent links and padding rows point past the other level."""
  num_fine = down.parent.shape[0]
  slots = jnp.arange(8, dtype=jnp.int32)
  parents = jnp.where(down.slot[:, None] == slots, down.parent[:, None], down.coarse).astype(jnp.int32)
  children = jnp.full((down.coarse, 8), num_fine, jnp.int32).at[down.parent, down.slot].set(
      jnp.arange(num_fine, dtype=jnp.int32), mode='drop')  # padding rows' parent is past the end
  return parents, children


def strided_conv_fused(x_fine, weight, down: DownMap):
  """``ops.strided_conv`` through the fused kernel: each parent sums its children's rows times
  their slots' weights."""
  parents, children = _slot_tables(down)
  return _table_conv(x_fine, weight, children, parents)


def transposed_conv_fused(x_coarse, weight, down: DownMap):
  """``ops.transposed_conv`` through the fused kernel: each child reads its parent's row times
  its slot's weight."""
  parents, children = _slot_tables(down)
  return _table_conv(x_coarse, weight, parents, children)


if __name__ == '__main__':
  if sys.argv[1:] != ['--build']:
    sys.exit('usage: python -m ws3d_jax.sparse.fused --build')
  print(f'fused sparse kernel: {build()}')

"""Which dataflow model.impl='auto' picks (sparse/fused.py::resolve)."""
import jax.numpy as jnp

from ws3d_jax.sparse import fused


def test_auto_takes_the_kernel_only_in_float32_where_it_is_built(monkeypatch, caplog):
  monkeypatch.setattr(fused, '_warned', [])
  monkeypatch.setattr(fused, 'available', lambda: True)
  assert fused.resolve('auto', jnp.float32) == 'fused'
  assert fused.resolve('auto', jnp.bfloat16) == 'pairs'
  assert fused.resolve(('auto', 'dense', 'pairs'), jnp.float32) == ('fused', 'dense', 'pairs')
  assert not caplog.records
  monkeypatch.setattr(fused, 'available', lambda: False)  # a checkout whose kernel was never built
  with caplog.at_level('WARNING'):
    assert fused.resolve('auto', jnp.float32) == 'pairs'
    assert fused.resolve('auto', jnp.float32) == 'pairs'
  said = [r.getMessage() for r in caplog.records]
  assert len(said) == 1 and 'bash setup.sh' in said[0]  # once a process, with what to do

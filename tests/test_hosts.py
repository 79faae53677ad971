"""The share of a global batch each process feeds, and the capacity exchange of a multi-host run,
the coordination service replaced by an in-memory store (the real one: tests/train/test_multihost.py)."""
import pytest

from ws3d_jax import hosts


class Store:
  """The three calls of jax.distributed's client the exchange makes, over one dict."""

  def __init__(self):
    self.values, self.deleted = {}, []

  def key_value_set(self, key, value):
    assert key not in self.values, f'{key} set twice'
    self.values[key] = value

  def blocking_key_value_get(self, key, timeout_ms):
    if key not in self.values:
      raise RuntimeError('DEADLINE_EXCEEDED')
    return self.values[key]

  def key_value_delete(self, key):
    self.deleted.append(key)
    self.values.pop(key)


def test_shares_cover_the_devices_in_order():
  shares = [hosts.Share(process=p, processes=3, local=2) for p in range(3)]
  assert [list(s.shards()) for s in shares] == [[0, 1], [2, 3], [4, 5]]
  assert {s.devices for s in shares} == {6}


def test_one_process_exchanges_nothing():
  assert hosts.Exchange(hosts.Share(), 'x').max(0, (3, 1)) == (3, 1)


def test_the_processes_agree_on_the_elementwise_maximum(monkeypatch):
  store = Store()
  monkeypatch.setattr(hosts, '_client', lambda: store)
  exchange = hosts.Exchange(hosts.Share(process=1, processes=2), 'caps')
  with pytest.raises(RuntimeError, match='process 0 sent no capacities for batch 5'):
    exchange.max(5, (1, 2))
  store.key_value_set(f'{exchange.name}/7/0', '[4, 1, 9]')  # what process 0 sent for batch 7
  assert exchange.max(7, (2, 5, 9)) == (4, 5, 9)
  assert store.values[f'{exchange.name}/7/1'] == '[2, 5, 9]'
  # The next stream's exchange has another name (every process builds its streams in one order).
  assert hosts.Exchange(hosts.Share(process=1, processes=2), 'caps').name != exchange.name


def test_old_keys_are_deleted_and_a_mismatch_is_named(monkeypatch):
  store = Store()
  monkeypatch.setattr(hosts, '_client', lambda: store)
  a = hosts.Exchange(hosts.Share(process=0, processes=2), 'caps')
  index = hosts._KEEP_BATCHES + 3
  store.key_value_set(f'{a.name}/{index}/1', '[1, 2]')
  store.key_value_set(f'{a.name}/3/0', '[1, 2]')
  assert a.max(index, (2, 1)) == (2, 2)
  assert store.deleted == [f'{a.name}/3/0']
  store.key_value_set(f'{a.name}/{index + 1}/1', '[1, 2, 3]')
  with pytest.raises(RuntimeError, match='count different structures'):
    a.max(index + 1, (2, 1))

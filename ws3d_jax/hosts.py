"""The processes of a run: which part of a global batch this process feeds, and how the
processes of a multi-host run agree on a batch's capacities.

A batch is global: ``train.labeled_batch`` scenes (and ``unlabeled_batch``) over every device
of every process, cut into one shard per device in device order. Process p feeds the shards of
its own devices, ``Share.local`` of them from ``Share.first``, and reads only their scenes.

The capacities (the padded sizes, static arguments of the step) must be the same on every
process, or the processes would run different programs and wait on each other's collectives
for ever. Each process counts its own shards and the processes exchange the counts through the
coordination service of ``jax.distributed`` (a key-value store of the coordinator, not a device
collective), so the exchange runs in the input pipeline's threads, in any order, beside the
steps. With one process nothing is exchanged.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json

import jax

# Keys older than this many batches are deleted: the steps' collectives keep the processes
# within a few batches of each other (the prefetch depth), far inside this window.
_KEEP_BATCHES = 1000
_TIMEOUT_MS = 30 * 60 * 1000  # a process this late has died; the error names the exchange
_exchanges = itertools.count()


@dataclasses.dataclass(frozen=True)
class Share:
  """This process's part of a global batch: devices ``first .. first + local - 1`` of ``devices``."""
  process: int = 0
  processes: int = 1
  local: int = 1  # devices of this process

  @property
  def devices(self) -> int:
    return self.processes * self.local

  @property
  def first(self) -> int:
    return self.process * self.local

  def shards(self) -> range:
    """The global shard (device) indices this process feeds."""
    return range(self.first, self.first + self.local)


def this_process() -> Share:
  return Share(process=jax.process_index(), processes=jax.process_count(), local=jax.local_device_count())


def writes_outputs() -> bool:
  """Whether this process writes the run's outputs (events, eval/, caches): the first one of a
  multi-host run; the others compute the same things and keep them to themselves."""
  return jax.process_index() == 0


class Exchange:
  """Element-wise maxima of integer tuples over the processes, one round per batch index.
  Every process builds its exchanges in the same order (one per input stream), so the n-th
  exchange of every process has the same name."""

  def __init__(self, share: Share, what: str):
    self.share = share
    self.name = f'ws3d/{next(_exchanges)}/{what}'

  def max(self, index: int, values: tuple) -> tuple:
    if self.share.processes == 1:
      return tuple(values)
    client = _client()
    client.key_value_set(self._key(index, self.share.process), json.dumps(list(map(int, values))))
    rounds = []
    for p in range(self.share.processes):
      try:
        rounds.append(json.loads(client.blocking_key_value_get(self._key(index, p), _TIMEOUT_MS)))
      except Exception as e:  # noqa: BLE001 - the coordinator's error says only "deadline exceeded"
        raise RuntimeError(f'{self.name}: process {p} sent no capacities for batch {index} in '
                           f'{_TIMEOUT_MS // 60000} min; it has stopped or runs another config ({e})') from None
    if index >= _KEEP_BATCHES:
      with contextlib.suppress(Exception):  # a resumed run's coordinator never held the old keys
        client.key_value_delete(self._key(index - _KEEP_BATCHES, self.share.process))
    if any(len(r) != len(values) for r in rounds):
      raise RuntimeError(f'{self.name}: the processes count different structures ({rounds}); '
                         'every process must run the same config')
    return tuple(max(column) for column in zip(*rounds))

  def _key(self, index: int, process: int) -> str:
    return f'{self.name}/{index}/{process}'


def _client():
  # jax has no public accessor for the coordination service's client; orbax reads the same one.
  from jax._src import distributed  # noqa: PLC0415
  if distributed.global_state.client is None:
    raise RuntimeError('more than one process but jax.distributed is not initialised; launch with --multihost')
  return distributed.global_state.client

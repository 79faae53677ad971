"""How fast the training step of a config runs, and how long it takes to compile.

    python -m ws3d_jax.bench.train_step                                  # the README's main job
    python -m ws3d_jax.bench.train_step --config=configs/synthetic.py:sup_only --rounds=5
    python -m ws3d_jax.bench.train_step --peer=/path/to/other/checkout   # side by side, interleaved

It builds the run exactly as ``launch.py`` would (data, split, bucket profile, model, objective,
first state), draws ``--batches`` batches from the training stream that share one capacity
bucket, and then times ``steps.train_step`` over them: the first call (compile + one step) and
``--rounds`` rounds of ``--steps`` steps each. Steps are timed on batches already on the host,
so the figure is the step itself; the input pipeline is timed separately (batches per second of
the stream). CPU time is split into user and system time (getrusage), because system time is
where allocation churn and spinning threads show up.

With ``--peer`` a second checkout runs the same script in its own process, and the two take
turns round by round, so that both see the same machine (a speed figure is a ratio measured
side by side). No persistent compilation cache is used: compile times are real.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from absl import app, flags

_MARKER = '@@ws3d-step-bench '
_ENV_AT_START = dict(os.environ)  # the peer starts from this, not from our own XLA settings

_CONFIG = flags.DEFINE_string('config', 'configs/synthetic.py', 'config file[:tokens] (as launch.py takes it)')
_OVERRIDES = flags.DEFINE_multi_string('set', [], 'config overrides, key=value (python literal)')
_BATCHES = flags.DEFINE_integer('batches', 4, 'distinct batches the step cycles through')
_STEPS = flags.DEFINE_integer('steps', 5, 'steps per round')
_ROUNDS = flags.DEFINE_integer('rounds', 5, 'timed rounds')
_PEER = flags.DEFINE_string('peer', '', 'another checkout: runs this benchmark too, in turns with this one')
_SERVE = flags.DEFINE_bool('serve', False, 'internal: take rounds from stdin (the peer protocol)')
_WORKDIR = flags.DEFINE_string('workdir', '/tmp/ws3d_train_step', 'scratch workdir (split, boundary cache)')
_OUT = flags.DEFINE_string('out', '', 'write the report as JSON here')


def _cpu():
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime, r.ru_stime


def load_config(spec: str, overrides):
  import ast  # noqa: PLC0415
  import importlib.util  # noqa: PLC0415
  path, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('bench_config', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg)
  for item in overrides:
    key, _, value = item.partition('=')
    node = config
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass
    node[leaf] = value
  return config


# The peer runs this file against its own package (--peer): a checkout before the run builder and
# the typed batch (issue 26, e.g. 203b4c1, the reference of issue 24) builds its run the old way.
def run_and_stream(config, workdir: str):
  """(the run, as run_builder.Run or the older train.setup.Setup, and its training stream)."""
  from ws3d_jax.data import pipeline, sources  # noqa: PLC0415
  try:
    from ws3d_jax.train import boundary_network, run_builder  # noqa: PLC0415
  except ImportError:
    return _old_run_and_stream(config, workdir)
  data = sources.load_experiment(run_builder.data_spec(config), workdir)
  run = run_builder.build(config, data)
  t = run.train
  data = boundary_network.with_boundary_points(run.boundary, data, workdir)
  return run, pipeline.ws3d_stream(data.labeled, data.unlabeled, t.labeled_batch, t.unlabeled_batch, t.seed,
                                   run.batcher, run.augment, num_threads=t.num_threads)


def _old_run_and_stream(config, workdir: str):
  from ws3d_jax.data import pipeline, sources  # noqa: PLC0415
  from ws3d_jax.data.augment import AugmentParams  # noqa: PLC0415
  from ws3d_jax.train import boundary, setup, tasks  # noqa: PLC0415
  t = config.train
  data = sources.load_experiment(config, workdir)
  run = setup.make_setup(config, data, tasks.get(config.task))
  data = boundary.with_boundary_points(config, data, workdir)
  return run, pipeline.ws3d_stream(data.labeled, data.unlabeled, t.labeled_batch, t.unlabeled_batch, config.seed,
                                   run.batcher, AugmentParams.from_config(config.data.augment),
                                   num_threads=config.data.num_threads)


def _caps(batch):
  return batch['caps'] if isinstance(batch, dict) else batch.caps


def _first_view(batch):
  return batch['view0'] if isinstance(batch, dict) else batch.views[0]


def _on_device(batch):
  if isinstance(batch, dict):  # before the typed batch: every array but the capacities and names
    return {k: v for k, v in batch.items() if k not in ('caps', 'scene_id')}
  return batch.on_device()


class StepBench:
  """The run of one config, built up to its first training step."""

  def __init__(self, config, workdir: str):
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from ws3d_jax.train import steps  # noqa: PLC0415

    run, stream = run_and_stream(config, workdir)
    self.model, self.objective, self.reader = run.model, run.objective, run.task.reader
    t0, drawn = time.perf_counter(), [next(stream) for _ in range(4 * _BATCHES.value)]
    self.pipeline_batches_per_s = len(drawn) / (time.perf_counter() - t0)
    caps = max({_caps(b) for b in drawn}, key=lambda c: sum(_caps(b) == c for b in drawn))
    self.batches = [b for b in drawn if _caps(b) == caps][:_BATCHES.value]
    self.caps = caps
    state = steps.create_train_state(jax.random.PRNGKey(config.seed), self.model, run.tx,
                                     jax.tree.map(lambda x: x[0], _first_view(self.batches[0])), caps)
    self.state = steps.replicate(state)
    self.rng = steps.replicate(jax.random.PRNGKey(1))
    self.device_batches = [jax.device_put(_on_device(b)) for b in self.batches]
    self._step = steps.train_step
    self._np = np
    self.i = 0

  def step(self):
    batch = self.device_batches[self.i % len(self.device_batches)]
    self.i += 1
    self.state, metrics = self._step(self.state, batch, self.rng, self.caps, self.model, self.objective,
                                     self.reader)
    return metrics

  def first_call(self) -> float:
    import jax  # noqa: PLC0415
    t0 = time.perf_counter()
    jax.block_until_ready(self.step())
    return time.perf_counter() - t0

  def round(self, n: int) -> dict:
    import jax  # noqa: PLC0415
    u0, s0 = _cpu()
    t0 = time.perf_counter()
    for _ in range(n):
      metrics = self.step()
    jax.block_until_ready(metrics)
    wall = time.perf_counter() - t0
    u1, s1 = _cpu()
    return {'seconds_per_step': wall / n, 'user': (u1 - u0) / n, 'sys': (s1 - s0) / n,
            'loss': float(self._np.asarray(metrics['loss'])[0])}


def _describe(bench: StepBench, first: float) -> dict:
  return {'caps_voxels': list(bench.caps.voxels), 'caps_points': bench.caps.points,
          'first_call_s': first, 'pipeline_batches_per_s': bench.pipeline_batches_per_s,
          'xla_flags': os.environ.get('XLA_FLAGS', ''), 'glibc_tunables': os.environ.get('GLIBC_TUNABLES', '')}


def serve(config):
  """The peer side: build, compile, then one round per line read from stdin."""
  bench = StepBench(config, _WORKDIR.value)
  info = _describe(bench, bench.first_call())
  print(_MARKER + json.dumps(info), flush=True)
  for line in sys.stdin:
    print(_MARKER + json.dumps(bench.round(int(line))), flush=True)


def _read_reply(peer: subprocess.Popen) -> dict:
  """The peer's next report; other lines on its stdout (TFDS progress bars) are passed through."""
  for line in peer.stdout:
    if line.startswith(_MARKER):
      return json.loads(line[len(_MARKER):])
    sys.stdout.write(line)
  raise RuntimeError(f'the peer process stopped (exit code {peer.wait()}); its error is above')


def _median(xs):
  xs = sorted(xs)
  n = len(xs)
  return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def _summary(rounds: list) -> dict:
  sps = [r['seconds_per_step'] for r in rounds]
  return {'median_s_per_step': _median(sps), 'min_s_per_step': min(sps), 'max_s_per_step': max(sps),
          'median_steps_per_s': 1 / _median(sps), 'median_user_s': _median([r['user'] for r in rounds]),
          'median_sys_s': _median([r['sys'] for r in rounds]),
          'sys_over_user': _median([r['sys'] / max(r['user'], 1e-9) for r in rounds])}


def _peer_process(peer: str) -> subprocess.Popen:
  """This script, run from the peer checkout's root against the peer's package."""
  argv = [sys.executable, os.path.abspath(__file__), '--serve', f'--config={_CONFIG.value}',
          f'--workdir={_WORKDIR.value}_peer'] + [f'--set={s}' for s in _OVERRIDES.value]
  env = dict(_ENV_AT_START, PYTHONPATH=os.path.abspath(peer))
  return subprocess.Popen(argv, cwd=peer, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def configure_runtime() -> None:
  """The checkout's own process settings (XLA flags, allocator) before jax starts; a checkout
  older than ws3d_jax.runtime gets what its launch.py set: LLVM -O1 on CPU."""
  try:
    from ws3d_jax import runtime  # noqa: PLC0415
  except ImportError:
    if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
      os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_backend_optimization_level=1').strip()
    return
  runtime.configure()


def main(argv):
  del argv
  configure_runtime()
  config = load_config(_CONFIG.value, _OVERRIDES.value)
  if _SERVE.value:
    return serve(config)
  report = {'config': _CONFIG.value, 'overrides': _OVERRIDES.value}
  peer = _peer_process(_PEER.value) if _PEER.value else None
  if peer is not None:  # the peer builds and compiles first, alone, so that both compile times are clean
    report['peer'] = dict(_read_reply(peer), checkout=_PEER.value)
  bench = StepBench(config, _WORKDIR.value)
  report['ours'] = _describe(bench, bench.first_call())
  ours, theirs = [], []
  # The second call: a step whose state came out of the first (a different layout recompiles).
  report['ours']['second_call_s'] = bench.round(1)['seconds_per_step']
  if peer is not None:
    peer.stdin.write('1\n')
    peer.stdin.flush()
    report['peer']['second_call_s'] = _read_reply(peer)['seconds_per_step']
  for r in range(_ROUNDS.value):
    ours.append(bench.round(_STEPS.value))
    if peer is not None:
      peer.stdin.write(f'{_STEPS.value}\n')
      peer.stdin.flush()
      theirs.append(_read_reply(peer))
    print(f'round {r}: ours {ours[-1]["seconds_per_step"]:.3f} s/step'
          + (f'  peer {theirs[-1]["seconds_per_step"]:.3f} s/step' if theirs else ''), flush=True)
  report['ours'].update(_summary(ours), rounds=ours)
  if peer is not None:
    peer.stdin.close()
    peer.wait()
    report['peer'].update(_summary(theirs), rounds=theirs)
    ratios = [t['seconds_per_step'] / o['seconds_per_step'] for o, t in zip(ours, theirs)]
    report['speedup'] = {'median': _median(ratios), 'min': min(ratios), 'max': max(ratios)}
  print(json.dumps({k: v for k, v in report.items()}, indent=1, default=str))
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(report, f, indent=1, default=str)
  return 0


if __name__ == '__main__':
  app.run(main)

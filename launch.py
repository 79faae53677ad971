"""Entry point: python launch.py --config=configs/<data set>.py[:<tokens>] --workdir=DIR [--mode=eval]

Any config field can be overridden on the command line, e.g. --config.train.steps=100; a field
that does not exist is an error naming it. --mode=eval evaluates a checkpoint of the workdir
(config.eval.checkpoint: best, latest or a step) and writes the metrics and exports again.
Multi-host: run the same command on every host with --multihost (jax.distributed.initialize
reads the coordinator from the cluster environment; see docs/training.md).
"""
import logging as pylogging
import os

from ws3d_jax import runtime

# Before jax starts: LLVM -O1 on CPU-only installs and huge pages for malloc (ws3d_jax/runtime.py;
# this re-executes the process once).
runtime.configure()

import jax  # noqa: E402  (after runtime.configure)
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ws3d_jax.train import trainer  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/synthetic.py', 'Training configuration file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', 'runs/default', 'Directory for checkpoints, TensorBoard and eval output.')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train (resuming when the workdir has a checkpoint) '
                          'or eval (a checkpoint of the workdir).')
_MULTIHOST = flags.DEFINE_bool('multihost', False, 'Call jax.distributed.initialize() first (one process per host).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _MULTIHOST.value:
    jax.distributed.initialize()
  # Compiling the sparse network takes tens of seconds on a CPU; a re-run (or a resumed run)
  # with the same buckets loads the executables from disk instead.
  jax.config.update('jax_compilation_cache_dir', os.environ.get(
      'WS3D_COMPILATION_CACHE', os.path.expanduser('~/.cache/ws3d_jax/xla')))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 2.0)
  # orbax narrates every checkpoint write at INFO; keep the console for training progress.
  logging.get_absl_handler().addFilter(
      lambda record: record.levelno >= pylogging.WARNING or '/orbax/' not in record.pathname)
  logging.info('config:\n%s', _CONFIG.value)
  trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value, mode=_MODE.value)


if __name__ == '__main__':
  app.run(main)

"""Entry point: python launch.py --config=configs/<data set>.py[:<tokens>] --workdir=DIR [--mode=eval]

Any config field can be overridden on the command line, e.g. --config.train.steps=100; a field
that does not exist is an error naming it and the nearest one. --mode=eval evaluates a
checkpoint of the workdir (config.eval.checkpoint: best, latest or a step) and writes the
metrics and exports again. --help lists the config files and tokens. Multi-host: run the same
command on every host with --multihost (see docs/training.md).
"""
import logging as pylogging
import os
import shlex
import sys

from ws3d_jax import cli, progress, runtime

VERBOSE = '--verbose' in sys.argv

# Answered before jax, TensorFlow and the training code are imported (seconds on a small machine).
if cli.wants_help(sys.argv):
  print(cli.help_text())
  sys.exit(0)
try:
  cli.check_command_line(sys.argv)
except cli.UsageError as e:
  sys.exit(cli.report(e, VERBOSE))

# Before jax starts: LLVM -O1 on CPU-only installs and huge pages for malloc (ws3d_jax/runtime.py;
# this re-executes the process once); a quiet console unless --verbose.
runtime.configure(quiet=not VERBOSE)

import jax  # noqa: E402  (after runtime.configure)
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ws3d_jax.train import checkpoints, interrupts, trainer  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/synthetic.py', 'Training configuration file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', 'runs/default', 'Directory for checkpoints, TensorBoard and eval output.')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train (resuming when the workdir has a checkpoint) '
                          'or eval (a checkpoint of the workdir).')
_MULTIHOST = flags.DEFINE_bool('multihost', False, 'One process per host: jax.distributed.initialize() first, with '
                                'the three flags below where set (SLURM and Open MPI fill them in themselves).')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None, 'Multi-host: host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Multi-host: how many processes the run has.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Multi-host: this process, 0 .. num_processes - 1.')
flags.DEFINE_bool('verbose', False, 'The full config, library logs and tracebacks on the console.')

# Library narration kept off the console unless --verbose: TFDS's INFO lines and the two warnings
# every build of a configured data set gives (a config named by its fields is "custom"; a folder
# being built has no dataset_info.json yet), and everything orbax logs: what matters of it reaches
# the console as our own one-line messages (a damaged checkpoint set aside, a failed save), while
# orbax logs one failed save as about 200 lines of tracebacks from its threads.
_QUIET_PATHS = ('/tensorflow_datasets/',)
_SILENT_PATHS = ('/orbax/',)
_EXPECTED_WARNINGS = ('Using custom data configuration', 'has no dataset_info.json')


def _console_filter(record) -> bool:
  if any(p in record.pathname for p in _SILENT_PATHS):
    return False
  if not any(p in record.pathname for p in _QUIET_PATHS):
    return True
  if record.levelno == pylogging.WARNING:
    return not any(w in record.getMessage() for w in _EXPECTED_WARNINGS)
  return record.levelno > pylogging.WARNING


def parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 - a bad flag value is a usage error, said in one line
    message = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
    sys.exit(cli.report(cli.UsageError(message.replace('\\n', ' ')), VERBOSE))


def main(argv):
  if len(argv) > 1:
    sys.exit(cli.report(cli.UsageError(f'unexpected arguments: {argv[1:]} (flags look like --name=value)'), VERBOSE))
  if _MULTIHOST.value:
    # On CPU the processes need a collectives library (no effect on GPU devices); a value the
    # user set (JAX_CPU_COLLECTIVES_IMPLEMENTATION) is kept.
    if 'JAX_CPU_COLLECTIVES_IMPLEMENTATION' not in os.environ:
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  # Compiling the sparse network takes tens of seconds on a CPU; a re-run (or a resumed run)
  # with the same buckets loads the executables from disk instead.
  jax.config.update('jax_compilation_cache_dir', os.environ.get(
      'WS3D_COMPILATION_CACHE', os.path.expanduser('~/.cache/ws3d_jax/xla')))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 2.0)
  if VERBOSE:
    logging.info('config:\n%s', _CONFIG.value)
  else:
    logging.get_absl_handler().addFilter(_console_filter)
  progress.Activity.current().watch(logging.get_absl_handler())
  interrupts.install(multihost=_MULTIHOST.value)
  checkpoints.drop_writes_completed_after_a_failed_save()
  try:
    trainer.train_and_evaluate(_CONFIG.value, _WORKDIR.value, mode=_MODE.value)
  except interrupts.Interrupted as e:
    resume = 'python ' + ' '.join(shlex.quote(a) for a in sys.argv)
    if e.step is None:
      print(f'{e}; nothing to resume from yet: {resume} starts again', file=sys.stderr)
    else:
      print(f'{e}; resume with: {resume}', file=sys.stderr)
    exit_now(e.exit_status)
  except Exception as e:  # noqa: BLE001 - one or two lines for a person; --verbose for the traceback
    exit_now(cli.report(e, VERBOSE))


def exit_now(status: int) -> None:
  """Exits without waiting for library threads: after a failed save orbax's background threads
  wait minutes for signals that never come (seen: 5 minutes), and the input pipeline's prefetch
  threads block on a full queue. Everything of the run that is complete is on disk already.
  Not in a multi-host run: there the first process hosts jax's coordination service, and leaving
  without its orderly shutdown aborts the other processes before they print their own error."""
  if jax.process_count() > 1:
    sys.exit(status)
  logging.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(status)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)

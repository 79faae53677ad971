"""What launch.py says before and around a run: a fast --help, config checks that name the
nearest valid choice, and errors in one or two lines.

Nothing here imports jax, TensorFlow or the training code: ``--help`` and a misspelt override
answer in well under a second, before the seconds those imports take.
"""
from __future__ import annotations

import difflib
import importlib.util
import re
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs'
EXAMPLE = 'python launch.py --config=configs/synthetic.py:smoke --workdir=runs/smoke --config.train.steps=10'


class UsageError(Exception):
  """A mistake on the command line: printed as one line, exit status 2."""


# --- help ------------------------------------------------------------------------------------------

def config_files() -> list[tuple[str, str]]:
  """(path, first line of its docstring) of every config file but the shared one."""
  out = []
  for path in sorted(CONFIG_DIR.glob('*.py')):
    if path.name in ('__init__.py', 'common.py'):
      continue
    text = path.read_text()
    m = re.search(r'"""(.*?)\n', text)
    out.append((f'configs/{path.name}', m.group(1).strip() if m else ''))
  return out


def token_lines() -> list[str]:
  """The token table of configs/common.py's docstring, as written there."""
  doc = _load_common().__doc__ or ''
  body = doc.split('Tokens (comma separated, any order):', 1)[-1]
  return [line for line in body.split('\n\n', 1)[0].splitlines() if line.strip()]


def help_text() -> str:
  files = '\n'.join(f'  {p:<28} {d}' for p, d in config_files())
  tokens = '\n'.join(token_lines())
  return f"""WS3D: weakly supervised 3D semantic (and instance) segmentation in JAX.

usage: python launch.py --config=configs/<file>.py[:<tokens>] [--workdir=DIR] [--mode=train|eval]
                        [--config.<field>=<value> ...] [--verbose] [--multihost]

Config files:
{files}

Tokens (after the colon, comma separated, any order):
{tokens}

Flags:
  --workdir=DIR          checkpoints, TensorBoard events, exports (default runs/default); a rerun resumes
  --mode=train|eval      eval: evaluate a checkpoint of the workdir (config.eval.checkpoint: best, latest, N)
  --config.<a.b>=<v>     override any config field (the full config of a run is <workdir>/config_train.json)
  --verbose              the full config, library logs and tracebacks on the console
  --multihost            one process per host (docs/training.md); on a plain cluster also
                         --coordinator_address=HOST:PORT --num_processes=N --process_id=I
  --helpfull             every absl flag

Example:
  {EXAMPLE}
"""


def wants_help(argv) -> bool:
  return any(a in ('-h', '--help', '-help', '--helpshort') for a in argv[1:])


# --- checks before anything heavy is imported -------------------------------------------------------

def check_command_line(argv) -> None:
  """Loads the config as config_flags will and checks every --config.<field> override against it.
  Raises UsageError naming the file, the token or the field, and the nearest valid choice."""
  spec = _flag_value(argv, 'config') or 'configs/synthetic.py'
  path, _, arg = spec.partition(':')
  if not Path(path).is_file():
    near = difflib.get_close_matches(path, [p for p, _ in config_files()], n=1)
    raise UsageError(f'--config: no config file {path}' + (f'; did you mean {near[0]}?' if near else '')
                     + ' (python launch.py --help lists them)')
  try:
    config = _load_module(Path(path)).get_config(arg) if arg else _load_module(Path(path)).get_config()
  except ValueError as e:
    raise UsageError(_token_message(str(e), path)) from None
  for name, _ in _overrides(argv):
    _check_field(config, name)


def _check_field(config, dotted: str) -> None:
  node, walked = config, []
  for key in dotted.split('.'):
    children = list(node.keys()) if hasattr(node, 'keys') else []
    if key not in children:
      prefix = '.'.join(walked)
      where = f'config.{prefix}' if prefix else 'config'
      candidates = [f'{prefix}.{c}' if prefix else c for c in children]
      near = difflib.get_close_matches(f'{prefix}.{key}' if prefix else key, candidates, n=1, cutoff=0.6)
      hint = f'did you mean --config.{near[0]}?' if near else f'{where} has: {", ".join(sorted(children))}'
      raise UsageError(f'--config.{dotted}: {where} has no field {key!r}; {hint}')
    node, walked = node[key], walked + [key]


def _token_message(message: str, path: str) -> str:
  m = re.search(r"unknown config token\(s\) \[(.*?)\]", message)
  if not m:
    return message.splitlines()[0]
  bad = [t.strip(" '") for t in m.group(1).split(',')]
  common = _load_common()
  known = list(common.RATIOS) + list(common.FLAGS)
  hints = []
  for t in bad:
    near = difflib.get_close_matches(t, known, n=1)
    hints.append(f'{t!r} (did you mean {near[0]!r}?)' if near else repr(t))
  return (f'--config={path}:...: unknown token {", ".join(hints)}; python launch.py --help lists the tokens')


def _flag_value(argv, name: str) -> str | None:
  value = None
  for i, a in enumerate(argv[1:], 1):
    if a.startswith(f'--{name}='):
      value = a.split('=', 1)[1]
    elif a == f'--{name}' and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def _overrides(argv):
  for a in argv[1:]:
    if a.startswith('--config.'):
      name, _, value = a[len('--config.'):].partition('=')
      yield name, value


def _load_module(path: Path):
  if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
  spec = importlib.util.spec_from_file_location(f'_ws3d_config_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _load_common():
  if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
  from configs import common
  return common


# --- errors ----------------------------------------------------------------------------------------

def short_error(exc: BaseException) -> str:
  """The error as a person reads it once: its type and its message's first two lines."""
  lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()] or [type(exc).__name__]
  head = lines[0] if isinstance(exc, UsageError) else f'{type(exc).__name__}: {lines[0]}'
  return '\n'.join([head] + lines[1:2])


def report(exc: BaseException, verbose: bool) -> int:
  """Prints the error to stderr (the traceback only when verbose) and returns the exit status."""
  if verbose:
    traceback.print_exception(exc)
  print(f'error: {short_error(exc)}', file=sys.stderr)
  if not verbose and not isinstance(exc, UsageError):
    print('(rerun with --verbose for the traceback)', file=sys.stderr)
  return 2 if isinstance(exc, UsageError) else 1

"""launch.py as a person meets it: --help, and mistakes that end in at most three lines on
stderr (no traceback), a non-zero exit and nothing run."""
import re
import subprocess
import sys

import pytest

from configs import common
from tests.conftest import REPO
from ws3d_jax import cli


def _launch(*args, timeout=300):
  return subprocess.run([sys.executable, 'launch.py', *args], cwd=REPO, capture_output=True, text=True,
                        timeout=timeout)


def test_help_exits_zero_and_lists_every_config_file_and_token():
  result = _launch('--help')
  assert result.returncode == 0, result.stderr
  for path in sorted((REPO / 'configs').glob('*.py')):
    if path.name not in ('__init__.py', 'common.py'):
      assert f'configs/{path.name}' in result.stdout
  for token in list(common.RATIOS) + list(common.FLAGS):
    assert re.search(rf'(^|\s){token}(\s|$)', result.stdout), token
  assert 'Example:' in result.stdout and result.stderr == ''


@pytest.mark.parametrize('args, says', [
    (('--config=configs/synthetic.py:smoke', '--config.train.stesp=5'), 'did you mean --config.train.steps?'),
    (('--config=configs/synthetic.py:smoke', '--config.trian.steps=5'), 'did you mean --config.train?'),
    (('--config=configs/synthetic.py:smok',), "unknown token 'smok' (did you mean 'smoke'?)"),
    (('--config=configs/synthetc.py',), 'did you mean configs/synthetic.py?'),
    (('--config=configs/synthetic.py:smoke', '--config.train.steps=abc'), "flag --config.train.steps=abc"),
])
def test_a_mistake_on_the_command_line_is_one_line(tmp_path, args, says):
  result = _launch(*args, f'--workdir={tmp_path / "run"}')
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: ') and says in lines[0], result.stderr
  assert not (tmp_path / 'run').exists()


def test_missing_download_says_what_to_pass_in_three_lines(tmp_path):
  result = _launch('--config=configs/semkitti.py:smoke', f'--config.data.data_dir={tmp_path / "tfds"}',
                   f'--workdir={tmp_path / "run"}')
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) <= 3, result.stderr
  assert 'not built' in lines[0] and '--config.data.manual_dir=DIR' in lines[0] and 'sequences/' in lines[0]
  assert 'Traceback' not in result.stderr and '--verbose' in lines[-1]


def test_verbose_brings_the_traceback_back(tmp_path):
  result = _launch('--config=configs/semkitti.py:smoke', f'--config.data.data_dir={tmp_path / "tfds"}',
                   f'--workdir={tmp_path / "run"}', '--verbose')
  assert result.returncode == 1 and 'Traceback' in result.stderr and 'not built' in result.stderr


def test_short_error_keeps_two_lines_of_the_message():
  assert cli.short_error(ValueError('first\nsecond\nthird')) == 'ValueError: first\nsecond'
  assert cli.short_error(cli.UsageError('bad flag')) == 'bad flag'

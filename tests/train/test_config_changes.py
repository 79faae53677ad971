"""A rerun of a workdir against the config its run was trained with (train/config_changes.py)."""
import json

import pytest

from configs import synthetic
from ws3d_jax.train import config_changes
from ws3d_jax.train.config_changes import ConfigChanged


def _workdir_of(tmp_path, config):
  (tmp_path / 'config_train.json').write_text(config.to_json_best_effort(indent=2))
  return tmp_path


def test_a_changed_model_or_learning_rate_stops_the_rerun_naming_both_values(tmp_path):
  workdir = _workdir_of(tmp_path, synthetic.get_config('smoke'))
  changed = synthetic.get_config('smoke')
  changed.model.width_scale, changed.optim.lr = 0.5, 0.002
  with pytest.raises(ConfigChanged) as e:
    config_changes.check(workdir, changed, 'train', has_checkpoints=True)
  message = str(e.value)
  assert 'model.width_scale 0.25 -> 0.5' in message and 'optim.lr 0.001 -> 0.002' in message
  assert '--config.train.resume_changes=model.width_scale,optim.lr' in message and '\n' not in message
  assert not (workdir / 'resumes.jsonl').exists()


def test_nothing_to_continue_nothing_to_check(tmp_path):
  workdir = _workdir_of(tmp_path, synthetic.get_config('smoke'))
  changed = synthetic.get_config('smoke')
  changed.model.width_scale = 0.5
  config_changes.check(workdir, changed, 'train', has_checkpoints=False)  # died before its first checkpoint
  config_changes.check(tmp_path / 'new', changed, 'train', has_checkpoints=True)  # no record


def test_safe_changes_pass_with_one_line(tmp_path, caplog):
  workdir = _workdir_of(tmp_path, synthetic.get_config('smoke'))
  longer = synthetic.get_config('smoke')
  longer.train.steps, longer.train.eval_every, longer.eval.ply_scenes = 60, 20, 0
  longer.model.impl = 'pairs'  # a run of an older default (the dataflow changes no value)
  with caplog.at_level('INFO'):
    config_changes.check(workdir, longer, 'train', has_checkpoints=True)
  lines = [r.getMessage() for r in caplog.records]
  assert len(lines) == 1 and 'train.steps 6 -> 60' in lines[0] and 'safe to change on resume' in lines[0]
  assert 'model.impl "auto" -> "pairs"' in lines[0]


def test_an_accepted_change_is_recorded(tmp_path):
  workdir = _workdir_of(tmp_path, synthetic.get_config('smoke'))
  changed = synthetic.get_config('smoke')
  changed.optim.lr, changed.train.resume_changes = 0.002, 'optim.lr'
  config_changes.check(workdir, changed, 'train', has_checkpoints=True)
  line = json.loads((workdir / 'resumes.jsonl').read_text().splitlines()[-1])
  assert line['changed'] == {'optim.lr': {'before': 0.001, 'now': 0.002}} and line['mode'] == 'train'
  changed.model.width_scale = 0.5  # a second change not accepted by name
  with pytest.raises(ConfigChanged, match='model.width_scale'):
    config_changes.check(workdir, changed, 'train', has_checkpoints=True)


def test_eval_checks_only_what_the_evaluation_reads(tmp_path):
  workdir = _workdir_of(tmp_path, synthetic.get_config('smoke'))
  other = synthetic.get_config('smoke')
  other.optim.lr, other.loss.w_energy = 0.5, 0.0  # training-only settings: the same model is evaluated
  config_changes.check(workdir, other, 'eval', has_checkpoints=True)
  other.model.impl = 'pairs'  # a workdir trained with the fused kernel, evaluated on a GPU
  config_changes.check(workdir, other, 'eval', has_checkpoints=True)
  other.data.voxel_size = 0.1
  with pytest.raises(ConfigChanged, match='data.voxel_size'):
    config_changes.check(workdir, other, 'eval', has_checkpoints=True)

"""Config files, tokens and start-up checks: a wrong value fails before anything runs."""
import subprocess
import types
import sys

import numpy as np
import pytest

from configs import s3dis, s3dis_ins, scannet, scannet_ins, semkitti, synthetic, synthetic_ins
from tests.conftest import REPO
from ws3d_jax.data import labels as label_defs
from ws3d_jax.models.pointgroup import PointGroupNet
from ws3d_jax.train import config_checks, optimizer, run_builder, tasks, trainer

ALL = {'semkitti': semkitti, 'scannet': scannet, 's3dis': s3dis, 'synthetic': synthetic,
       'scannet_ins': scannet_ins, 's3dis_ins': s3dis_ins, 'synthetic_ins': synthetic_ins}


@pytest.mark.parametrize('name', sorted(ALL))
def test_every_ratio_token_sets_the_label_ratio_and_passes_the_checks(name):
  for pct in (1, 5, 10, 15, 20, 25, 30, 40, 100):
    config = ALL[name].get_config(f'{pct}pct')
    assert config.data.label_ratio == pytest.approx(pct / 100)
    config_checks.validate_config(config)


def test_sup_only_keeps_the_labeled_budget_and_drops_every_ws3d_term():
  ws3d, sup = semkitti.get_config('5pct'), semkitti.get_config('5pct,sup_only')
  assert sup.train.labeled_batch == ws3d.train.labeled_batch and sup.train.epochs == ws3d.train.epochs
  assert sup.train.unlabeled_batch == 0 and not sup.boundary.enabled
  objective = run_builder.objective(sup, 19)
  assert (objective.w_ce, objective.w_sup_contrast, objective.w_energy, objective.w_contrast) == (1.0, 0.0, 0.0, 0.0)


def test_each_table5_ablation_token_turns_off_exactly_its_switch():
  base = run_builder.objective(scannet.get_config('5pct'), 20)
  expect = {
      'no_boundary': lambda o: not o.energy.use_boundary,
      'no_pairwise': lambda o: not o.energy.use_pairwise,
      'no_energy_h': lambda o: not o.energy.use_confidence_mask,
      'no_contrast_h': lambda o: not o.contrast.use_confidence_mask,
      'no_contrast': lambda o: o.w_contrast == 0,
      'no_sce': lambda o: o.w_ce == 0 and o.w_energy > 0,
  }
  for token, check in expect.items():
    objective = run_builder.objective(scannet.get_config(f'5pct,{token}'), 20)
    assert check(objective) and objective != base, token
  assert run_builder.ws3d_net(scannet.get_config('last_stage'), 20).contrast_stages == (4,)
  assert run_builder.ws3d_net(scannet.get_config(''), 20).contrast_stages == (0, 1, 2, 3, 4)


def test_unknown_tokens_and_two_ratios_are_errors_that_list_the_known_ones():
  with pytest.raises(ValueError, match=r"unknown config token\(s\) \['5pc'\].*known"):
    semkitti.get_config('5pc')
  with pytest.raises(ValueError, match='more than one label ratio'):
    scannet.get_config('1pct,5pct')


def test_impossible_values_fail_at_start_with_what_to_do(tmp_path):
  config = synthetic.get_config('smoke')
  config.data.label_ratio = 0.0
  with pytest.raises(ValueError, match=r'label_ratio=0.0 is impossible.*5pct'):
    config_checks.validate_config(config)
  config = semkitti.get_config('smoke')
  config.data.data_dir = str(tmp_path)
  with pytest.raises(FileNotFoundError, match=r'--config.data.manual_dir=DIR.*sequences'):
    trainer.train_and_evaluate(config, str(tmp_path / 'run'))
  config.data.manual_dir = str(tmp_path / 'nowhere')
  with pytest.raises(FileNotFoundError, match='nowhere is not a directory'):
    config_checks.validate_config(config)
  config = scannet.get_config('sup_only')
  config.train.unlabeled_batch = 8
  config.loss.w_energy = 1.0
  config_checks.validate_config(config)
  config.train.unlabeled_batch = 0
  with pytest.raises(ValueError, match='sup_only'):
    config_checks.validate_config(config)
  # A sup_only baseline that still loads unlabeled scenes is not the baseline: refused.
  config = scannet.get_config('sup_only')
  config.train.unlabeled_batch = 1
  with pytest.raises(ValueError, match=r'unlabeled_batch=1 but no loss trains on unlabeled scenes'):
    config_checks.validate_config(config)
  for field, value, message in (('boundary.threshold', 1.5, 'boundary.threshold is a probability'),
                                ('loss.warmup', 0.95, 'fractions of the steps'),
                                ('optim.lr', -1.0, 'optim.lr must be positive'),
                                ('optim.lr', 0.0, 'optim.lr must be positive'),
                                # one source of truth for the batch: a step draws labeled + unlabeled
                                ('train.batch_size', 32, r'batch_size=32 but a step draws train.labeled_batch=1 \+ '
                                 r'train.unlabeled_batch=1 scenes'),
                                ('train.init_from', str(tmp_path / 'no_run'), 'no_run has no checkpoints/')):
    config = synthetic.get_config('5pct')
    section, name = field.split('.')
    config[section][name] = value
    with pytest.raises((ValueError, FileNotFoundError), match=message):
      config_checks.validate_config(config)


def test_instance_configs_parse_tokens_and_check_their_values():
  config = scannet_ins.get_config('5pct,sup_only')
  assert config.task == 'instance' and config.data.label_ratio == 0.05 and config.train.unlabeled_batch == 0
  assert tuple(config.instance.no_instance_classes) == ('wall', 'floor')
  assert s3dis_ins.get_config('1pct').instance.no_instance_classes == ('ceiling', 'floor', 'wall')
  task = tasks.get(config.task)
  settings = run_builder.task_settings(config, task, label_defs.SCANNET_CLASSES)
  assert isinstance(task.make_model(run_builder.ws3d_net(config, 20), settings), PointGroupNet)
  config_checks.validate_config(config)
  config.instance.score_start = 1.0
  with pytest.raises(ValueError, match='instance.score_start'):
    config_checks.validate_config(config)
  config = scannet_ins.get_config('')
  config.instance.no_instance_classes = ('wal',)
  with pytest.raises(ValueError, match=r"\['wal'\] are not classes of the data set"):
    run_builder.task_settings(config, tasks.get('instance'), label_defs.SCANNET_CLASSES).ignore_ids


def test_launch_rejects_a_mistyped_field_by_name():
  result = subprocess.run([sys.executable, 'launch.py', '--config=configs/synthetic.py:smoke',
                           '--config.train.stepz=3', '--workdir=/nonexistent'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert 'stepz' in result.stderr and not (REPO / 'nonexistent').exists()


def test_sup_only_decays_the_learning_rate_at_the_same_steps_as_ws3d():
  ws3d, sup = scannet.get_config('5pct'), scannet.get_config('5pct,sup_only')
  split = {'labeled': [{'scene': f's{i}'} for i in range(100)], 'unlabeled': [{'scene': f's{i}'} for i in range(1201)]}
  data = types.SimpleNamespace(split=split)
  ws3d.train.epochs = sup.train.epochs = 500
  assert run_builder.steps_of(ws3d, data) == run_builder.steps_of(sup, data) == (500 * (1201 // 16), 1201 // 16)
  per_epoch = 1201 // 16
  _, schedule = optimizer.make_optimizer(run_builder.optim_spec(ws3d), 500 * per_epoch, per_epoch)
  assert float(schedule(50 * per_epoch - 1)) == pytest.approx(1e-3)
  assert float(schedule(50 * per_epoch)) == pytest.approx(2e-4)
  assert float(schedule(100 * per_epoch)) == pytest.approx(4e-5)


def test_every_table5_case_is_reachable_by_tokens_and_differs_from_case1():
  from configs.common import TABLE5_CASES
  full = scannet.get_config('5pct')
  objectives = {case: run_builder.objective(scannet.get_config(f'5pct,{tokens}'.rstrip(',')), 20)
                for case, tokens in TABLE5_CASES.items()}
  assert sorted(TABLE5_CASES) == list(range(1, 10))
  assert objectives[1] == run_builder.objective(full, 20)
  for case in range(2, 10):
    differs = objectives[case] != objectives[1] or case == 6
    assert differs, case
  assert objectives[8].w_ce == 0 and objectives[8].w_energy > 0  # Case 8: no supervised CE branch
  assert objectives[9].w_energy == objectives[9].w_contrast == 0  # Case 9: supervised only


def test_default_schedule_warms_up_and_paper_token_is_literal():
  default = run_builder.objective(synthetic.get_config('5pct'), 10, total_steps=1000)
  paper = run_builder.objective(synthetic.get_config('5pct,paper'), 10, total_steps=1000)
  assert default.ramp.warmup_steps > 0 and default.w_energy < 1 and default.w_sup_contrast == 0
  assert (paper.ramp.warmup_steps, paper.ramp.rampup_steps, paper.w_energy, paper.w_contrast) == (0, 0, 1.0, 1.0)
  with_sc = run_builder.objective(synthetic.get_config('5pct,sup_contrast'), 10)
  assert with_sc.w_sup_contrast > 0


def test_cosine_and_poly_schedules_decay_to_zero_over_the_run():
  config = synthetic.get_config('5pct')
  config.optim.schedule = 'cosine'
  _, cosine = optimizer.make_optimizer(run_builder.optim_spec(config), 1000, 6)
  # lr (1 + cos(pi t / T)) / 2, by hand
  for step, expected in ((0, 1e-3), (250, 1e-3 * (1 + np.cos(np.pi / 4)) / 2), (500, 5e-4), (1000, 0.0)):
    assert float(cosine(step)) == pytest.approx(expected, abs=1e-9), step
  config.optim.schedule, config.optim.poly_power = 'poly', 0.9
  _, poly = optimizer.make_optimizer(run_builder.optim_spec(config), 1000, 6)
  for step in (0, 100, 500, 999, 1000):
    assert float(poly(step)) == pytest.approx(1e-3 * (1 - step / 1000) ** 0.9, abs=1e-9), step
  config.optim.schedule = 'linear'
  with pytest.raises(ValueError, match=r"optim.schedule='linear'; one of \('step', 'cosine', 'poly'\)"):
    config_checks.validate_config(config)

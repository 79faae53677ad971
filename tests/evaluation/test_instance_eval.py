"""Tests of ws3d_jax.evaluation.instance_ap against hand-computed ScanNet instance AP values.

Each expected number is derived in a comment from the rules of the official
evaluate_semantic_instance.py (ScanNet/ScanNet BenchmarkScripts/3d_evaluation): a match needs
IoU > threshold, thresholds 0.5, 0.55, ..., 0.9 (nine, averaged into 'ap') and 0.25, masks
and ground-truth instances below 100 points are set aside, and AP integrates the
precision-recall points (one per unique score, plus (recall 0, precision 1)) with widths
w_i = (r_{i-1} - r_{i+1}) / 2, points in increasing score order, r_{-1} = r_0, r_{K+1} = 0.

The scenes are laid out as consecutive blocks of points; `_Scene` gives each block a name.
"""
import re

import numpy as np
import open3d as o3d
import pytest

from ws3d_jax.data import labels, ply
from ws3d_jax.evaluation import instance_ap as instance

WALL, FLOOR, CABINET, CHAIR, TABLE = 0, 1, 2, 4, 6
VOID = labels.IGNORE_LABEL
# The 18 instance classes of the benchmark's CLASS_LABELS, in order, and their NYU40 ids.
INSTANCE_CLASS_NAMES = ['cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window',
                        'bookshelf', 'picture', 'counter', 'desk', 'curtain', 'refrigerator',
                        'shower curtain', 'toilet', 'sink', 'bathtub', 'otherfurniture']
VALID_CLASS_IDS = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]


class _Scene:
  """Ground truth from blocks (name, class, instance id, points); masks from block names."""

  def __init__(self, *blocks):
    self.slices, start = {}, 0
    sem, inst = [], []
    for name, c, i, n in blocks:
      self.slices[name] = slice(start, start + n)
      sem.append(np.full(n, c, np.int32))
      inst.append(np.full(n, i, np.int32))
      start += n
    self.n = start
    self.sem, self.inst = np.concatenate(sem), np.concatenate(inst)

  def mask(self, *parts):
    """Union of whole blocks ('name') and first points of blocks (('name', count))."""
    m = np.zeros(self.n, bool)
    for part in parts:
      name, count = (part, None) if isinstance(part, str) else part
      s = self.slices[name]
      m[s.start:s.stop if count is None else s.start + count] = True
    return m

  def add(self, ev, scene_id, preds):
    """preds: [(mask, class, score)]."""
    masks = np.array([p[0] for p in preds], bool).reshape(len(preds), self.n)
    ev.add_scene(scene_id, self.sem, self.inst, masks, [p[1] for p in preds],
                 [p[2] for p in preds])


def _run(scene, preds, scene_id='scene0000_00'):
  ev = instance.InstanceEvaluator()
  scene.add(ev, scene_id, preds)
  return ev.result()


def _aps(result, name='table'):
  r = result['per_class'][name]
  return r['ap'], r['ap50'], r['ap25']


# --------------------------------------------------------------------------------------------
# Protocol constants.

def test_protocol_constants_match_the_script():
  # np.append(np.arange(0.5, 0.95, 0.05), 0.25): nine thresholds 0.5..0.9, then 0.25.
  assert len(instance.OVERLAPS) == 10
  np.testing.assert_allclose(instance.OVERLAPS[:9], 0.5 + 0.05 * np.arange(9))
  assert instance.OVERLAPS[-1] == 0.25
  assert instance.MIN_REGION_SIZE == 100
  names = [labels.SCANNET_CLASSES[c] for c in instance.SCANNET_INSTANCE_CLASSES]
  assert names == INSTANCE_CLASS_NAMES
  assert [labels.SCANNET_NYU40_IDS[c] for c in instance.SCANNET_INSTANCE_CLASSES] == \
      VALID_CLASS_IDS


# --------------------------------------------------------------------------------------------
# Hand-computed AP values.

def test_perfect_prediction_is_one():
  s = _Scene(('wall', WALL, 0, 300), ('t', TABLE, 1, 200), ('c', CHAIR, 2, 150),
             ('v', VOID, 0, 50))
  # One TP per class: points (r=1, p=1) and (0, 1); widths (1-0)/2, (1-0)/2 -> AP 1.
  res = _run(s, [(s.mask('t'), TABLE, 0.9), (s.mask('c'), CHAIR, 0.3)])
  assert (res['ap'], res['ap50'], res['ap25']) == (1.0, 1.0, 1.0)
  assert _aps(res, 'table') == _aps(res, 'chair') == (1.0, 1.0, 1.0)
  assert res['per_class']['table']['num_gt'] == 1
  assert res['classes_evaluated'] == 2 and res['scenes'] == 1
  assert res['per_class']['sofa'] == {'ap': None, 'ap50': None, 'ap25': None, 'num_gt': 0}
  assert set(res['per_class']) == set(INSTANCE_CLASS_NAMES)


def test_missed_instance_halves_ap():
  s = _Scene(('t1', TABLE, 1, 200), ('t2', TABLE, 2, 200))
  # TP at score .9, one hard FN: point (r=.5, p=1), end point (0, 1);
  # widths (.5-0)/2, (.5-0)/2 -> AP = .25 + .25 = .5 at every threshold.
  res = _run(s, [(s.mask('t1'), TABLE, 0.9)])
  assert _aps(res) == pytest.approx((0.5, 0.5, 0.5))
  assert res['ap'] == pytest.approx(0.5)


def test_false_positive_scored_above_the_true_positive():
  s = _Scene(('t', TABLE, 1, 200), ('c', CHAIR, 2, 200))
  # The table prediction on the chair is a FP (no void points). Scores: TP .5, FP .9.
  # Points by increasing score: t=.5 (tp 1, fp 1: r=1, p=.5), t=.9 (tp 0, fp 1: r=0, p=0),
  # end (r=0, p=1). Widths: (1-0)/2, (1-0)/2, (0-0)/2 -> AP = .5*.5 + 0*.5 + 1*0 = .25.
  res = _run(s, [(s.mask('t'), TABLE, 0.5), (s.mask('c'), TABLE, 0.9),
                 (s.mask('c'), CHAIR, 0.7)])
  assert _aps(res) == pytest.approx((0.25, 0.25, 0.25))
  assert _aps(res, 'chair') == (1.0, 1.0, 1.0)
  assert res['ap'] == pytest.approx((0.25 + 1.0) / 2)


def test_false_positive_scored_below_the_true_positive():
  s = _Scene(('t', TABLE, 1, 200), ('c', CHAIR, 2, 200))
  # Scores: FP .5, TP .9. t=.5 (tp 1, fp 1: r=1, p=.5), t=.9 (tp 1, fp 0: r=1, p=1),
  # end (0, 1). Widths: (1-1)/2, (1-0)/2, (1-0)/2 -> AP = 0 + .5 + .5 = 1.
  res = _run(s, [(s.mask('t'), TABLE, 0.9), (s.mask('c'), TABLE, 0.5)])
  assert _aps(res) == pytest.approx((1.0, 1.0, 1.0))


@pytest.mark.parametrize('inside, expected', [
    # IoU 151/300 = .503 > .5: TP at .5 and .25, nothing above; at .55..0.9 the prediction is
    # a FP (no void points) and the instance a hard FN: point (r=0, p=0) -> AP 0.
    # ap = (1 + 8 * 0) / 9.
    (151, (1 / 9, 1.0, 1.0)),
    # IoU 150/300 = .5 exactly: not > .5, so only the .25 threshold matches.
    (150, (0.0, 0.0, 1.0)),
    # IoU 149/300 = .497.
    (149, (0.0, 0.0, 1.0)),
])
def test_iou_around_one_half(inside, expected):
  s = _Scene(('t', TABLE, 1, 300))
  res = _run(s, [(s.mask(('t', inside)), TABLE, 0.8)])
  assert _aps(res) == pytest.approx(expected)


def test_iou_just_over_a_higher_threshold():
  s = _Scene(('t', TABLE, 1, 1000), ('c', CHAIR, 1, 300))
  # IoU 701/1000 = .701 > .7 but not > .75: TP at .5, .55, .6, .65, .7 and .25 (AP 1 each),
  # FP + hard FN (AP 0) at .75, .8, .85, .9 -> ap = 5/9.
  res = _run(s, [(s.mask(('t', 701)), TABLE, 0.8), (s.mask('c'), CHAIR, 0.8)])
  assert _aps(res) == pytest.approx((5 / 9, 1.0, 1.0))


@pytest.mark.parametrize('scores', [(0.9, 0.8), (0.8, 0.9)])
def test_duplicate_prediction_is_one_tp_and_one_fp(scores):
  s = _Scene(('t', TABLE, 1, 200))
  # Both match; the TP takes the higher score, the FP the lower, whichever comes first:
  # the FP-below-TP case -> AP 1.
  res = _run(s, [(s.mask('t'), TABLE, scores[0]), (s.mask(('t', 190)), TABLE, scores[1])])
  assert _aps(res) == pytest.approx((1.0, 1.0, 1.0))


def test_duplicate_takes_the_higher_score_as_true_positive():
  s = _Scene(('t1', TABLE, 1, 200), ('t2', TABLE, 2, 200))
  # t1: A (.9) then B (.95), both exact; t2: C (.85). The TP of t1 scores .95, the FP .9.
  # Points: t=.85 (tp 2, fp 1: r=1, p=2/3), t=.9 (tp 1, fp 1: r=.5, p=.5),
  # t=.95 (tp 1, fp 0: r=.5, p=1), end (0, 1). Recalls [1, .5, .5, 0]; widths
  # (1-.5)/2, (1-.5)/2, (.5-0)/2, (.5-0)/2 = .25 each -> AP = (2/3 + .5 + 1 + 1) / 4 = 19/24.
  # (Had the .9 one stayed the TP, the FP at .95 would give AP 1/3.)
  res = _run(s, [(s.mask('t1'), TABLE, 0.9), (s.mask('t1'), TABLE, 0.95),
                 (s.mask('t2'), TABLE, 0.85)])
  assert _aps(res) == pytest.approx((19 / 24, 19 / 24, 19 / 24))


def test_prediction_mostly_on_void_is_not_a_false_positive():
  s = _Scene(('t', TABLE, 1, 200), ('c', CHAIR, 2, 200), ('v', VOID, 0, 95),
             ('w', WALL, 3, 100), ('f', FLOOR, 0, 100), ('u', CABINET, 0, 100))
  # Void points: ignore label, wall and floor (whatever their instance id) and instance id 0.
  # Each table prediction scored .9 (above the TP) has 95+ void points of 100: share .95 >
  # every threshold, never a FP -> AP 1.
  preds = [(s.mask('t'), TABLE, 0.5), (s.mask('c'), CHAIR, 0.5),
           (s.mask('v', ('c', 5)), TABLE, 0.9), (s.mask(('w', 95), ('c', 5)), TABLE, 0.9),
           (s.mask(('f', 95), ('c', 5)), TABLE, 0.9), (s.mask(('u', 95), ('c', 5)), TABLE, 0.9)]
  assert _aps(_run(s, preds)) == (1.0, 1.0, 1.0)


def test_partly_void_prediction_counts_from_its_void_share():
  s = _Scene(('t', TABLE, 1, 200), ('c', CHAIR, 2, 200), ('v', VOID, 0, 60))
  # Void share 60/100 = .6: ignored where .6 > threshold (.25, .5, .55; AP 1), a FP scored
  # above the TP from .6 on (seven thresholds; AP .25 as in the FP-above-TP test).
  # ap = (2 * 1 + 7 * .25) / 9.
  res = _run(s, [(s.mask('t'), TABLE, 0.5), (s.mask('c'), CHAIR, 0.5),
                 (s.mask('v', ('c', 40)), TABLE, 0.9)])
  assert _aps(res) == pytest.approx(((2 + 7 * 0.25) / 9, 1.0, 1.0))


def test_small_ground_truth_is_ignored_not_missed():
  s = _Scene(('t', TABLE, 1, 200), ('small', TABLE, 2, 60), ('w', WALL, 0, 40),
             ('c', CHAIR, 3, 200))
  # The 60-point table is below 100 points: not evaluated (no FN when missed), and its points
  # count as ignored for the table predictions. B (.9) = small + 40 wall points: IoU with the
  # small instance .6 (> .25, .5, .55: "found", no FP); from .6 on its ignored share is
  # (40 + 60) / 100 = 1 > threshold: no FP either -> AP 1 everywhere.
  # The exact 60-point mask of the small instance is below 100 points and dropped.
  res = _run(s, [(s.mask('t'), TABLE, 0.5), (s.mask('small', 'w'), TABLE, 0.9),
                 (s.mask('small'), TABLE, 0.95), (s.mask(('c', 99)), TABLE, 0.99)])
  assert _aps(res) == (1.0, 1.0, 1.0)
  assert res['per_class']['table']['num_gt'] == 1
  # B without the wall points but with 40 chair points: ignored share .6, so a FP above the
  # TP from .6 on (the partly-void case): the small instance's points are what is ignored.
  res = _run(s, [(s.mask('t'), TABLE, 0.5), (s.mask('small', ('c', 40)), TABLE, 0.9)])
  assert _aps(res) == pytest.approx(((2 + 7 * 0.25) / 9, 1.0, 1.0))


def test_wall_and_floor_predictions_are_not_evaluated():
  s = _Scene(('t', TABLE, 1, 200), ('c', CHAIR, 2, 200))
  # The script skips predictions whose label is no instance class: no FP from them.
  res = _run(s, [(s.mask('t'), TABLE, 0.5), (s.mask('c'), WALL, 0.9), (s.mask('c'), FLOOR, 0.9),
                 (s.mask('c'), CHAIR, 0.1)])
  assert (res['ap'], res['ap50'], res['ap25']) == (1.0, 1.0, 1.0)


def test_scenes_accumulate():
  a = _Scene(('t', TABLE, 1, 200))
  b = _Scene(('t', TABLE, 1, 400))
  ev = instance.InstanceEvaluator()
  a.add(ev, 'scene0000_00', [(a.mask('t'), TABLE, 0.9)])
  # In b the prediction covers 100 of 400 points: IoU .25, not > .25, a FP at every
  # threshold, and b's table is a hard FN. Together: TP .9, FP .8, 1 hard FN.
  # Points: t=.8 (tp 1, fp 1, fn 1: r=.5, p=.5), t=.9 (tp 1, fp 0: r=.5, p=1), end (0, 1).
  # Widths (.5-.5)/2, (.5-0)/2, (.5-0)/2 -> AP = 0 + .25 + .25 = .5.
  b.add(ev, 'scene0001_00', [(b.mask(('t', 100)), TABLE, 0.8)])
  assert len(ev) == 2
  res = ev.result()
  assert _aps(res) == pytest.approx((0.5, 0.5, 0.5))
  assert res['per_class']['table']['num_gt'] == 2 and res['scenes'] == 2


# --------------------------------------------------------------------------------------------
# Empty inputs and absent classes.

def test_scene_without_any_instance():
  s = _Scene(('w', WALL, 0, 300), ('v', VOID, 0, 200))
  ev = instance.InstanceEvaluator()
  ev.add_scene('scene0000_00', s.sem, s.inst, np.zeros((0, s.n), bool), [], [])
  res = ev.result()
  # Nothing to evaluate: every class None, means 0.0 (the script's nanmean would be NaN).
  assert (res['ap'], res['ap50'], res['ap25']) == (0.0, 0.0, 0.0)
  assert res['classes_evaluated'] == 0
  assert all(v['ap'] is None for v in res['per_class'].values())
  # Predictions there lie on void only: they do not hurt another scene's perfect table.
  t = _Scene(('t', TABLE, 1, 200))
  ev = instance.InstanceEvaluator()
  s.add(ev, 'scene0000_00', [(s.mask('w'), TABLE, 0.99)])
  t.add(ev, 'scene0001_00', [(t.mask('t'), TABLE, 0.5)])
  assert _aps(ev.result()) == (1.0, 1.0, 1.0)
  assert 'n/a' in instance.format_table(res)


@pytest.mark.parametrize('empty', [[], np.zeros((0, 250), bool), np.zeros((0,), bool)])
def test_predictions_without_any_cluster(empty):
  s = _Scene(('t', TABLE, 1, 200), ('c', CHAIR, 2, 50))
  ev = instance.InstanceEvaluator()
  ev.add_scene('scene0000_00', s.sem, s.inst, empty, np.zeros(0, np.int32), [])
  res = ev.result()
  # Table has ground truth and no prediction: AP 0 (the chair is below 100 points: None).
  assert _aps(res) == (0.0, 0.0, 0.0)
  assert res['per_class']['chair']['ap'] is None
  assert (res['ap'], res['classes_evaluated']) == (0.0, 1)


def test_class_absent_from_ground_truth_stays_out_of_the_mean():
  s = _Scene(('t', TABLE, 1, 200), ('c', CABINET, 2, 200))
  # A chair prediction (no chair anywhere in the ground truth) on the table: chair AP is NaN
  # in the script (None here) and the mean is the table's 1 alone; the cabinet has ground
  # truth and no prediction: AP 0, so with it the mean is (1 + 0) / 2.
  res = _run(s, [(s.mask('t'), TABLE, 0.5), (s.mask('t'), CHAIR, 0.99)])
  assert res['per_class']['chair'] == {'ap': None, 'ap50': None, 'ap25': None, 'num_gt': 0}
  assert _aps(res, 'cabinet') == (0.0, 0.0, 0.0)
  assert (res['ap'], res['ap50'], res['ap25']) == (0.5, 0.5, 0.5)
  assert not any(np.isnan(res[k]) for k in ('ap', 'ap50', 'ap25'))
  s = _Scene(('t', TABLE, 1, 200))
  res = _run(s, [(s.mask('t'), TABLE, 0.5), (s.mask('t'), CHAIR, 0.99)])
  assert (res['ap'], res['ap50'], res['ap25']) == (1.0, 1.0, 1.0)


def test_class_whose_predictions_are_all_set_aside_scores_zero():
  s = _Scene(('t', TABLE, 1, 200), ('v', VOID, 0, 200))
  # Ground truth and a prediction, but the prediction lies on void only: no TP or FP at all.
  # The script fails here (cumsum of nothing); the curve with only its end point gives 0.
  res = _run(s, [(s.mask('v'), TABLE, 0.9)])
  assert _aps(res) == (0.0, 0.0, 0.0)


def test_format_table_lists_every_class_in_percent():
  s = _Scene(('t1', TABLE, 1, 200), ('t2', TABLE, 2, 200))
  text = instance.format_table(_run(s, [(s.mask('t1'), TABLE, 0.9)]))
  lines = text.splitlines()
  assert lines[0].split() == ['class', 'AP', 'AP50', 'AP25', 'GT']
  assert len(lines) == 1 + 18 + 1
  assert re.match(r'table\s+50\.0\s+50\.0\s+50\.0\s+2$', lines[1 + INSTANCE_CLASS_NAMES.index('table')])
  assert lines[-1].startswith('mean') and '50.0' in lines[-1] and 'over 1 classes' in lines[-1]


# --------------------------------------------------------------------------------------------
# Bad input.

def _good():
  s = _Scene(('t', TABLE, 1, 200), ('v', VOID, 0, 10))
  return dict(gt_semantic=s.sem, gt_instance=s.inst, pred_masks=s.mask('t')[None],
              pred_class=np.array([TABLE]), pred_score=np.array([0.5]))


@pytest.mark.parametrize('change, message', [
    (dict(pred_masks=np.ones((1, 209), bool)), 'pred_masks have 209 points .* scene has 210'),
    (dict(pred_masks=np.ones(210, bool)), r'shape \(P, N\)'),
    (dict(pred_masks=np.full((1, 210), 0.7)), 'bool or integer'),
    (dict(gt_instance=np.zeros(209, np.int32)), 'gt_semantic has 210 points, gt_instance 209'),
    (dict(gt_semantic=np.full(210, 20)), r'ground-truth classes \[20\]'),
    (dict(gt_semantic=np.full(210, 1.0)), 'gt_semantic must be integers'),
    (dict(gt_instance=np.full(210, -1)), 'negative ground-truth instance'),
    (dict(pred_class=np.array([20])), r'predicted classes \[20\] outside 0..19'),
    (dict(pred_class=np.array([-1])), r'predicted classes \[-1\]'),
    (dict(pred_class=np.array([255])), r'predicted classes \[255\]'),
    (dict(pred_class=np.array([6, 6])), '1 masks but 2 classes and 1 scores'),
    (dict(pred_score=np.array([np.nan])), 'NaN or infinite'),
    (dict(pred_score=np.array([0.5, 0.4])), '1 masks but 1 classes and 2 scores'),
])
def test_bad_input_names_scene_and_problem(change, message):
  ev = instance.InstanceEvaluator()
  with pytest.raises(ValueError, match='scene0707_00') as info:
    ev.add_scene('scene0707_00', **{**_good(), **change})
  assert re.search(message, str(info.value)), str(info.value)
  assert len(ev) == 0  # nothing half-added


def test_scene_added_twice():
  ev = instance.InstanceEvaluator()
  ev.add_scene('scene0707_00', **_good())
  with pytest.raises(ValueError, match='scene0707_00: scene added twice'):
    ev.add_scene('scene0707_00', **_good())


# --------------------------------------------------------------------------------------------
# Export.

def _official_read(out_dir, scene_id, num_points):
  """The reading steps of the script's read_instance_prediction_file and load_ids."""
  out = []
  index = out_dir / f'{scene_id}.txt'
  for line in index.read_text().splitlines():
    path, label, conf = line.split(' ')
    mask = np.array((index.parent / path).read_text().splitlines(), dtype=np.int64)
    assert len(mask) == num_points
    out.append((mask != 0, int(float(label)), float(conf)))
  return out


def test_export_round_trip(tmp_path):
  s = _Scene(('t', TABLE, 1, 200), ('c', CHAIR, 2, 150), ('w', WALL, 0, 30))
  masks = np.stack([s.mask('t'), s.mask('c'), s.mask(('w', 10), ('c', 3))])
  classes = np.array([TABLE, CHAIR, labels.SCANNET_CLASSES.index('otherfurniture')])
  scores = np.array([0.91234, 0.5, 0.123456])
  path = instance.write_scannet_instances(tmp_path, 'scene0707_00', masks, classes, scores)
  assert path == tmp_path / 'scene0707_00.txt'
  # table -> NYU40 7, chair -> 5, otherfurniture -> 39; confidences with four decimals.
  assert path.read_text().splitlines() == [
      'predicted_masks/scene0707_00_000.txt 7 0.9123',
      'predicted_masks/scene0707_00_001.txt 5 0.5000',
      'predicted_masks/scene0707_00_002.txt 39 0.1235']
  mask_files = sorted(p.name for p in (tmp_path / 'predicted_masks').iterdir())
  assert mask_files == [f'scene0707_00_00{k}.txt' for k in range(3)]  # no temporary left
  assert sorted(p.name for p in tmp_path.iterdir()) == ['predicted_masks', 'scene0707_00.txt']
  first = (tmp_path / 'predicted_masks' / 'scene0707_00_000.txt').read_text()
  assert first == ''.join('1\n' if v else '0\n' for v in masks[0])

  official = _official_read(tmp_path, 'scene0707_00', s.n)
  for (m, label, conf), want_m, c, sc in zip(official, masks, classes, scores):
    np.testing.assert_array_equal(m, want_m)
    assert label == labels.SCANNET_NYU40_IDS[c] and conf == round(sc, 4)
  got_masks, got_classes, got_scores = instance.read_scannet_instances(tmp_path, 'scene0707_00',
                                                                       s.n)
  np.testing.assert_array_equal(got_masks, masks)
  np.testing.assert_array_equal(got_classes, classes)
  np.testing.assert_allclose(got_scores, [0.9123, 0.5, 0.1235])

  # The read-back predictions evaluate like the originals.
  ev = instance.InstanceEvaluator()
  ev.add_scene('scene0707_00', s.sem, s.inst, got_masks, got_classes, got_scores)
  assert (ev.result()['ap'], ev.result()['ap50']) == (1.0, 1.0)

  with pytest.raises(ValueError, match='lines for 100 vertices'):
    instance.read_scannet_instances(tmp_path, 'scene0707_00', 100)


def test_export_without_instances_and_bad_input(tmp_path):
  path = instance.write_scannet_instances(tmp_path, 'scene0000_00', np.zeros((0, 50), bool),
                                          [], [])
  assert path.read_text() == ''
  masks, classes, scores = instance.read_scannet_instances(tmp_path, 'scene0000_00', 50)
  assert masks.shape == (0, 50) and classes.shape == scores.shape == (0,)
  with pytest.raises(ValueError, match='white space'):
    instance.write_scannet_instances(tmp_path, 'scene 1', np.ones((1, 5), bool), [6], [0.5])
  with pytest.raises(ValueError, match=r'scene0001_00: predicted classes \[20\]'):
    instance.write_scannet_instances(tmp_path, 'scene0001_00', np.ones((1, 5), bool), [20],
                                     [0.5])
  assert not (tmp_path / 'scene0001_00.txt').exists()


def test_reader_refuses_paths_outside_and_unknown_labels(tmp_path):
  (tmp_path / 'a.txt').write_text('../x.txt 7 0.5\n')
  with pytest.raises(ValueError, match='outside'):
    instance.read_scannet_instances(tmp_path, 'a', 3)
  (tmp_path / 'm.txt').write_text('1\n0\n1\n')
  (tmp_path / 'b.txt').write_text('m.txt 13 0.5\n')  # NYU40 13 (pillow) is no class
  with pytest.raises(ValueError, match='NYU40 id 13'):
    instance.read_scannet_instances(tmp_path, 'b', 3)


def test_instance_ply_colours_by_highest_scoring_instance(tmp_path):
  n = 6
  xyz = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
  masks = np.array([[1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 1, 0, 0, 0]], bool)
  scores = np.array([0.2, 0.7, 0.5])
  # Point 0: only instance 0; 1: 0 or 1 -> 1 (.7); 2: all three -> 1; 3: 1; 4, 5: none.
  want = np.array([0, 1, 1, 1, -1, -1])
  np.testing.assert_array_equal(instance.instance_of_points(masks, scores), want)
  path = instance.write_instance_ply(tmp_path / 'scene.ply', xyz, masks, scores)
  palette = instance.instance_palette(3)
  np.testing.assert_array_equal(palette, instance.instance_palette(3, seed=0))  # fixed
  cloud = o3d.io.read_point_cloud(str(path))
  np.testing.assert_allclose(np.asarray(cloud.points), xyz)
  rgb = np.where(want[:, None] >= 0, palette[np.maximum(want, 0)], 128)
  np.testing.assert_allclose(np.asarray(cloud.colors), rgb / 255, atol=1 / 255)
  np.testing.assert_array_equal(ply.read_ply(path)['vertex']['instance'], want)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['scene.ply']
  with pytest.raises(ValueError, match='pred_masks have 5 points'):
    instance.write_instance_ply(tmp_path / 'bad.ply', xyz, masks[:, :5], scores)

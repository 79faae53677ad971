import numpy as np
import pytest

from ws3d_jax.data import scannet, splits


def _scenes(num=40, seed=0, quantum=None):
  rng = np.random.default_rng(seed)
  scenes = {}
  for i in range(num):
    xyz = rng.uniform(0, rng.uniform(2, 8, 3), (int(rng.integers(500, 5000)), 3))
    if quantum:  # many points share coordinates, as on a voxel grid
      xyz = np.round(xyz / quantum) * quantum
    scenes[f'scene{i:03d}'] = xyz.astype(np.float32)
  return scenes


def _split(scenes, ratio, seed=0, **kw):
  counts = {k: len(v) for k, v in scenes.items()}
  return splits.make_split(counts, ratio, seed, scenes.__getitem__, **kw)


def _branch_points(scenes, entries):
  return sum(int(splits.apply_cut(scenes[e['scene']], e['cut']).sum()) for e in entries)


@pytest.mark.parametrize('ratio', [0.01, 0.05, 0.2, 0.4])
def test_labeled_share_is_exact(ratio):
  scenes = _scenes()
  split = _split(scenes, ratio)
  total = sum(len(v) for v in scenes.values())
  labeled = _branch_points(scenes, split['labeled'])
  assert split['total_points'] == total and split['labeled_points'] == labeled
  assert abs(labeled / total - ratio) < 0.001  # within 0.1 percentage point
  assert abs(labeled - round(ratio * total)) <= 1
  assert split['achieved_ratio'] == labeled / total
  # Every training point is in exactly one branch.
  assert labeled + _branch_points(scenes, split['unlabeled']) == total
  cut = split['cut']
  assert cut is not None and cut['axis'] in (0, 1) and cut['labeled_side'] == 'below'
  entries = {e['scene']: e for e in split['labeled'] + split['unlabeled'] if e['cut']}
  assert list(entries) == [cut['scene']]
  # The plane runs across the longest horizontal axis of the cut scene.
  extent = np.ptp(scenes[cut['scene']], axis=0)
  assert cut['axis'] == int(np.argmax(extent[:2]))


def test_cut_with_tied_coordinates_is_within_a_handful():
  scenes = _scenes(quantum=0.05)
  split = _split(scenes, 0.05)
  target = round(0.05 * split['total_points'])
  cut = scenes[split['cut']['scene']][:, split['cut']['axis']]
  ties = np.bincount(np.unique(cut, return_inverse=True)[1]).max()
  assert abs(split['labeled_points'] - target) <= ties
  assert abs(split['achieved_ratio'] - 0.05) < 0.001


def test_same_seed_same_file_and_round_trip(tmp_path):
  scenes = _scenes()
  splits.save_split(_split(scenes, 0.1, seed=3), tmp_path / 'a.json')
  splits.save_split(_split(dict(reversed(scenes.items())), 0.1, seed=3), tmp_path / 'b.json')
  splits.save_split(_split(scenes, 0.1, seed=4), tmp_path / 'c.json')
  assert (tmp_path / 'a.json').read_bytes() == (tmp_path / 'b.json').read_bytes()
  assert (tmp_path / 'a.json').read_bytes() != (tmp_path / 'c.json').read_bytes()
  loaded = splits.load_split(tmp_path / 'a.json')
  assert loaded == _split(scenes, 0.1, seed=3)
  # A loaded cut reproduces the labeled count exactly (the threshold survives JSON).
  assert _branch_points(scenes, loaded['labeled']) == loaded['labeled_points']
  (tmp_path / 'x.json').write_text('{"labeled": []}')
  with pytest.raises(ValueError, match='x.json.*not a label split'):
    splits.load_split(tmp_path / 'x.json')


def test_full_ratio_puts_every_scene_in_both_branches():
  scenes = _scenes(10)
  split = _split(scenes, 1.0)
  assert sorted(e['scene'] for e in split['labeled']) == sorted(scenes)
  assert [e['scene'] for e in split['unlabeled']] == [e['scene'] for e in split['labeled']]
  assert all(e['cut'] is None for e in split['labeled'] + split['unlabeled'])
  assert split['achieved_ratio'] == 1.0 and split['cut'] is None


def test_transductive_adds_evaluation_scenes():
  scenes = _scenes(10)
  split = _split(scenes, 0.3, transductive_scenes=['val0', 'val1'])
  assert [e['scene'] for e in split['unlabeled'][-2:]] == ['val0', 'val1']
  assert split['transductive_scenes'] == ['val0', 'val1']
  assert 'val0' not in [e['scene'] for e in split['labeled']]
  assert split['total_points'] == sum(len(v) for v in scenes.values())
  with pytest.raises(ValueError, match='transductive scenes are training scenes'):
    _split(scenes, 0.3, transductive_scenes=['scene001'])


@pytest.mark.parametrize('ratio', [0, -0.1, 1.5])
def test_bad_ratio(ratio):
  with pytest.raises(ValueError, match='label ratio'):
    _split(_scenes(3), ratio)


def test_boundary_without_cut_and_missing_xyz():
  counts = {'a': 50, 'b': 50}
  split = splits.make_split(counts, 0.5, seed=0)  # the target falls on a scene boundary
  assert split['cut'] is None and split['labeled_points'] == 50
  assert len(split['labeled']) == 1 and len(split['unlabeled']) == 1
  with pytest.raises(ValueError, match='pass scene_xyz'):
    splits.make_split(counts, 0.3, seed=0)
  with pytest.raises(ValueError, match='scene_xyz gave 3 points'):
    splits.make_split(counts, 0.3, seed=0, scene_xyz=lambda s: np.zeros((3, 3)))


def test_five_percent_of_real_scannet_scenes(shared_data):
  data_dir = shared_data('scannet', 'scannet_instance_data')
  xyz = {s: scannet.read_npy_scene(data_dir, s, with_labels=False)['xyz']
         for s in scannet.list_npy_scenes(data_dir)}
  split = _split(xyz, 0.05, seed=1)
  assert abs(split['achieved_ratio'] - 0.05) < 0.001
  assert _branch_points(xyz, split['labeled']) == split['labeled_points']


def test_cut_stays_vertical_when_only_z_could_hit_the_count_exactly():
  # Horizontal coordinates on a 1 cm grid (many ties), heights continuous: a z cut could always
  # land on the exact count, but it would label a horizontal slab (floor-level classes only).
  rng = np.random.default_rng(0)
  xyz = np.concatenate([np.round(rng.uniform(0, 4, (3000, 2)), 2), rng.uniform(0, 3, (3000, 1))], 1)
  for target in range(100, 2900, 97):
    axis, threshold, below = splits._plane_cut(xyz, target)
    assert axis in (0, 1), target
    assert abs(below - target) <= 0.01 * len(xyz)
    assert (xyz[:, axis] < threshold).sum() == below

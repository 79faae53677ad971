import numpy as np
import pytest
import yaml

from ws3d_jax.data import labels


def test_embedded_semantickitti_maps_equal_official_yaml(shared_data):
  path = shared_data('semantickitti', 'semantic-kitti.yaml')
  with open(path) as f:
    cfg = yaml.safe_load(f)
  assert labels.SEMANTICKITTI_LEARNING_MAP == cfg['learning_map']
  assert labels.SEMANTICKITTI_LEARNING_MAP_INV == cfg['learning_map_inv']
  assert labels.load_semantickitti_maps(path) == (cfg['learning_map'], cfg['learning_map_inv'])
  names = tuple(cfg['labels'][cfg['learning_map_inv'][k]] for k in range(1, 20))
  assert labels.SEMANTICKITTI_CLASSES == names
  bgr = np.array([cfg['color_map'][cfg['learning_map_inv'][k]] for k in range(1, 20)])
  np.testing.assert_array_equal(labels.SEMANTICKITTI_PALETTE, bgr[:, ::-1])


def test_class_lists_and_palettes_agree():
  assert len(labels.SEMANTICKITTI_CLASSES) == 19
  assert len(labels.SCANNET_CLASSES) == len(labels.SCANNET_NYU40_IDS) == 20
  assert len(labels.S3DIS_CLASSES) == 13
  for name, classes in labels.CLASSES.items():
    assert labels.PALETTES[name].shape == (len(classes), 3), name
    assert labels.PALETTES[name].dtype == np.uint8


def test_nyu40_maps():
  lut = labels.nyu40_to_train_lut()
  assert lut[0] == labels.IGNORE_LABEL
  assert lut[1] == 0 and lut[39] == 19 and lut[14] == 12  # wall, otherfurniture, desk
  assert lut[13] == labels.IGNORE_LABEL and lut[40] == labels.IGNORE_LABEL
  np.testing.assert_array_equal(labels.train_to_nyu40_lut()[lut[list(labels.SCANNET_NYU40_IDS)]],
                                labels.SCANNET_NYU40_IDS)
  np.testing.assert_array_equal(labels.map_nyu40(np.array([0, 1, 40, 39])), [255, 0, 255, 19])


def test_nyu40_unknown_ids_name_the_source():
  with pytest.raises(ValueError, match=r'scene\.npy.*41 \(2 points\)'):
    labels.map_nyu40(np.array([1, 41, 41]), 'scene.npy')


def test_semantickitti_map_and_inverse():
  raw = np.array([0, 1, 10, 252, 40, 60, 81, 99])
  train = labels.map_semantickitti(raw)
  np.testing.assert_array_equal(train, [255, 255, 0, 0, 8, 8, 18, 255])
  np.testing.assert_array_equal(labels.semantickitti_train_to_raw(train),
                                [0, 0, 10, 10, 40, 40, 81, 0])


def test_semantickitti_unknown_ids_name_the_source():
  with pytest.raises(ValueError, match=r'x\.label.*2 \(1 points\), 300 \(1 points\)'):
    labels.map_semantickitti(np.array([10, 2, 300]), 'x.label')


def test_s3dis_class_names():
  assert labels.s3dis_class_id('ceiling') == 0
  assert labels.s3dis_class_id('stairs') == labels.S3DIS_CLASSES.index('clutter')
  with pytest.raises(ValueError, match='piano_1.txt.*piano'):
    labels.s3dis_class_id('piano', 'piano_1.txt')
  assert labels.s3dis_class_id('piano', unknown='clutter') == 12

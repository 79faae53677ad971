"""SemanticKITTI: LiDAR scans with 19 classes + ignore, from a user's download (manual_dir).

    tfds build tfds_builders/semantic_kitti --manual_dir=DIR --data_dir=OUT

DIR holds sequences/SS/velodyne/NNNNNN.bin and sequences/SS/labels/NNNNNN.label (or
DIR/dataset/sequences/..., the official zip). Whatever sequences are present are built:
train 00-07, 09, 10; validation 08; test 11-21 (no labels). semantickitti_{train,val,test}.txt
in DIR override the split (one sequence "08" or scan "08_000123" per line).
"""
from __future__ import annotations

import sys
from pathlib import Path

try:
  import ws3d_jax  # noqa: F401
except ImportError:  # `tfds build tfds_builders/...` without PYTHONPATH=<repo>
  sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ws3d_jax.data import tfds_features as tf_feat  # noqa: E402
from ws3d_jax.data import tfds_scenes  # noqa: E402


class Builder(tf_feat.SceneBuilder):
  """SemanticKITTI scans with WS3D preprocessing (regions, adjacency, boundaries)."""

  DATASET = 'semantickitti'
  LABELS = 'semantickitti'
  NUM_FEATURES = 1
  FEATURE_DOC = 'remission (the 4th float of the .bin)'
  FEATURE_RAW_SCALE = 1.0  # remission is passed to preprocess_scene as read
  HOMEPAGE = 'http://www.semantic-kitti.org/'
  # One registered config (the TFDS CLI builds every registered config when given none);
  # variants are custom configs, e.g. --config='{"name": "skip_bad", "skip_bad_scenes": true}'.
  BUILDER_CONFIGS = [tf_feat.SceneConfig(name='default', description='Every point of every scan.')]
  DEFAULT_BUILDER_CONFIG_NAME = 'default'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the KITTI Odometry velodyne scans and the SemanticKITTI labels
  (http://www.semantic-kitti.org/dataset.html#download) and point --manual_dir at the folder
  that holds sequences/ (or at the folder that holds dataset/sequences/). Optional
  semantickitti_{train,val,test}.txt files there override the official split.
  """

  def _scene_tasks(self, manual_dir):
    root = tfds_scenes.kitti_root(manual_dir)
    return {split: [tf_feat.task(sid, tfds_scenes.read_kitti, str(root), sid, split)
                    for sid in ids]
            for split, ids in tfds_scenes.kitti_scenes(manual_dir).items()}

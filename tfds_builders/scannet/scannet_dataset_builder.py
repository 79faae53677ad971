"""ScanNet v2: indoor scans with the 20 benchmark classes + ignore, from a user's download.

    tfds build tfds_builders/scannet --manual_dir=DIR --data_dir=OUT

DIR holds either the official layout (scans/<scene>/<scene>_vh_clean_2.ply, ..labels.ply,
.._vh_clean_2.0.010000.segs.json, <scene>.aggregation.json; test scenes in scans_test/) or the
common preprocessed layout (scannet_instance_data/<scene>_{vert,sem_label,ins_label}.npy).
Splits: the official lists (splits/scannetv2_{train,val,test}.txt, shipped here);
scannetv2_{train,val,test}.txt in DIR override them. Listed scenes absent from DIR are left
out (and counted in the log).
"""
from __future__ import annotations

import sys
from pathlib import Path

try:
  import ws3d_jax  # noqa: F401
except ImportError:  # `tfds build tfds_builders/...` without PYTHONPATH=<repo>
  sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ws3d_jax.data import scannet as scannet_reader  # noqa: E402
from ws3d_jax.data import tfds_features as tf_feat  # noqa: E402
from ws3d_jax.data import tfds_scenes  # noqa: E402

# The official split lists (ScanNet/Tasks/Benchmark/scannetv2_*.txt).
OFFICIAL_SPLIT_DIR = Path(__file__).resolve().parent / 'splits'


class Builder(tf_feat.SceneBuilder):
  """ScanNet v2 scenes with WS3D preprocessing (regions, adjacency, boundaries)."""

  DATASET = 'scannet'
  LABELS = 'scannet'
  NUM_FEATURES = 3
  FEATURE_DOC = 'rgb in 0..1'
  HOMEPAGE = 'http://www.scan-net.org/'
  BUILDER_CONFIGS = [tf_feat.SceneConfig(name='default',
                                         description='Every vertex of every scene.')]
  DEFAULT_BUILDER_CONFIG_NAME = 'default'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download ScanNet v2 (http://www.scan-net.org/, terms of use required) with the file types
  _vh_clean_2.ply, _vh_clean_2.labels.ply, _vh_clean_2.0.010000.segs.json and
  .aggregation.json, and point --manual_dir at the folder holding scans/ (and scans_test/).
  The preprocessed layout scannet_instance_data/<scene>_{vert,sem_label,ins_label}.npy
  (mmdetection3d / votenet) works too. scannetv2_{train,val,test}.txt there override the
  official split lists.
  """

  def _scene_tasks(self, manual_dir):
    defaults = (OFFICIAL_SPLIT_DIR, scannet_reader.PACKAGE_SPLIT_DIR)
    return {split: [tf_feat.task(sid, tfds_scenes.read_scannet, str(manual_dir), sid, split)
                    for sid in ids]
            for split, ids in tfds_scenes.scannet_scenes(manual_dir, defaults).items()}

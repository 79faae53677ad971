"""S3DIS: indoor rooms with 13 classes and instances, from a user's download (manual_dir).

    tfds build tfds_builders/s3dis --manual_dir=DIR --data_dir=OUT

DIR holds Area_N/<room>/Annotations/<class>_<k>.txt (or
Stanford3dDataset_v1.2_Aligned_Version/Area_N/...). Splits: validation = Area 5 (the config's
validation_area), train = the other areas, no test split; s3dis_{train,val,test}.txt in DIR
override them (one area "Area_5" or room "Area_5_office_1" per line). Known defects of the
raw release (rows with a stray byte or a wrong column count; 'stairs' files) are absorbed by
the reader (rows skipped and logged; stairs -> clutter).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

try:
  import ws3d_jax  # noqa: F401
except ImportError:  # `tfds build tfds_builders/...` without PYTHONPATH=<repo>
  sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ws3d_jax.data import tfds_features as tf_feat  # noqa: E402
from ws3d_jax.data import tfds_scenes  # noqa: E402


@dataclasses.dataclass(eq=False)
class S3DISConfig(tf_feat.SceneConfig):
  """validation_area: the area of the validation split (5 by convention; 1..6 for the
  6-fold cross-validation)."""
  validation_area: int = 5


class Builder(tf_feat.SceneBuilder):
  """S3DIS rooms with WS3D preprocessing (regions, adjacency, boundaries)."""

  DATASET = 's3dis'
  LABELS = 's3dis'
  NUM_FEATURES = 3
  FEATURE_DOC = 'rgb in 0..1'
  HOMEPAGE = 'http://buildingparser.stanford.edu/dataset.html'
  # One registered config (the TFDS CLI builds every registered config when given none);
  # e.g. --config='{"name": "grid2cm", "subsample_voxel": 0.02}' or
  # --config='{"name": "fold1", "validation_area": 1}' for others.
  BUILDER_CONFIGS = [S3DISConfig(name='default', description='Every point of every room; '
                                 'Area 5 is the validation split.')]
  DEFAULT_BUILDER_CONFIG_NAME = 'default'
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download Stanford3dDataset_v1.2_Aligned_Version (http://buildingparser.stanford.edu/) and
  point --manual_dir at the folder holding Area_1 ... Area_6 (or at its parent).
  s3dis_{train,val,test}.txt there override the split (areas or rooms, one per line).
  """

  def _scene_tasks(self, manual_dir):
    root = tfds_scenes.s3dis_root(manual_dir)
    scenes = tfds_scenes.s3dis_scenes(manual_dir, self.builder_config.validation_area)
    return {split: [tf_feat.task(sid, tfds_scenes.read_s3dis, str(root), sid) for sid in ids]
            for split, ids in scenes.items()}

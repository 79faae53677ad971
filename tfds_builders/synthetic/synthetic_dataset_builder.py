"""The embedded default: procedurally generated rooms (ws3d_jax.data.synthetic), no download.

    tfds build tfds_builders/synthetic --data_dir=OUT
    tfds build tfds_builders/synthetic --data_dir=OUT \\
        --config='{"name": "train4_val2_pts8000", "num_train": 4, "num_val": 2, "num_points": 8000}'

Splits: train (rooms room_seed..room_seed+num_train-1) and validation (rooms 100000+room_seed..);
no test split.
Preprocessing uses the ScanNet parameters.
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
class SyntheticConfig(tf_feat.SceneConfig):
  """Rooms per split and points per room (the defaults match configs/synthetic.py)."""
  num_train: int = 24
  num_val: int = 4
  num_points: int = 20000
  room_seed: int = 0  # seed offset of the rooms: another offset gives rooms nobody tuned on


def config_name(num_train: int, num_val: int, num_points: int, room_seed: int = 0) -> str:
  return f'train{num_train}_val{num_val}_pts{num_points}' + (f'_seed{room_seed}' if room_seed else '')


DEFAULT_CONFIG = SyntheticConfig(name='default', description='24 training and 4 validation '
                                 'rooms of 20000 points (configs/synthetic.py).')


def make_config(num_train: int = 24, num_val: int = 4, num_points: int = 20000, room_seed: int = 0,
                **kwargs) -> SyntheticConfig:
  """The registered default config for the default sizes, else a custom config named by the
  sizes and seed offset (train4_val2_pts8000, train400_val40_pts4000_seed1000), so that each
  variant gets its own folder under data_dir."""
  if (num_train, num_val, num_points, room_seed) == (24, 4, 20000, 0) and not kwargs:
    return DEFAULT_CONFIG
  return SyntheticConfig(name=config_name(num_train, num_val, num_points, room_seed),
                         num_train=num_train, num_val=num_val, num_points=num_points,
                         room_seed=room_seed, **kwargs)


class Builder(tf_feat.SceneBuilder):
  """Procedural indoor rooms with WS3D preprocessing (regions, adjacency, boundaries)."""

  DATASET = 'scannet'  # preprocessing parameters: ScanNet-like density
  LABELS = 'synthetic'
  NUM_FEATURES = 3
  FEATURE_DOC = 'rgb in 0..1'
  BUILDER_CONFIGS = [DEFAULT_CONFIG]
  DEFAULT_BUILDER_CONFIG_NAME = 'default'

  def _scene_tasks(self, manual_dir):
    c = self.builder_config
    if min(c.num_train, c.num_val, c.num_points) < 0 or c.num_points == 0:
      raise ValueError(f'bad synthetic sizes: {c}')
    return {split: [tf_feat.task(sid, tfds_scenes.read_synthetic, sid, c.num_points)
                    for sid in ids]
            for split, ids in tfds_scenes.synthetic_scenes(c.num_train, c.num_val, c.room_seed).items()}

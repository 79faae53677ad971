"""SemanticKITTI (19 classes, sequence 08 for validation), 5 cm voxels.

    python launch.py --config=configs/semkitti.py:5pct --config.data.manual_dir=/data/SemanticKITTI
    python launch.py --config=configs/semkitti.py:1pct,sup_only ...

Tokens: see configs/common.py (ratios 1pct..100pct, sup_only, smoke, ablations).
"""
from configs import common


def defaults(c):
  c.data.name = 'semantic_kitti'
  c.data.voxel_size = 0.05
  # Remission is not a colour: no colour jitter. Scans are 50 m+ wide, so no scaling below 0.95.
  c.data.augment.colour_features = False
  c.data.augment.scale = (0.95, 1.05)
  c.data.augment.jitter = 0.01


def smoke(c):
  c.data.voxel_size = 0.2  # a whole scan in a few thousand voxels


def get_config(arg: str = ''):
  return common.get(arg, 'configs/semkitti.py', defaults, smoke)

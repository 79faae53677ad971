"""S3DIS (13 classes, Area 5 for validation), 5 cm voxels.

    python launch.py --config=configs/s3dis.py:5pct --config.data.manual_dir=/data/S3DIS

Tokens: see configs/common.py (ratios 1pct..100pct, sup_only, smoke, ablations).
"""
from configs import common


def defaults(c):
  c.data.name = 's3dis'
  c.data.voxel_size = 0.05


def smoke(c):
  c.data.voxel_size = 0.1


def get_config(arg: str = ''):
  return common.get(arg, 'configs/s3dis.py', defaults, smoke)

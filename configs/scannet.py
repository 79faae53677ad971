"""ScanNet v2 (20 classes, the 312 validation scenes), 2 cm voxels.

    python launch.py --config=configs/scannet.py:5pct --config.data.manual_dir=/data/ScanNet

Tokens: see configs/common.py (ratios 1pct..100pct, sup_only, smoke, ablations).
"""
from configs import common


def defaults(c):
  c.data.name = 'scannet'
  c.data.voxel_size = 0.02


def smoke(c):
  c.data.voxel_size = 0.1


def get_config(arg: str = ''):
  return common.get(arg, 'configs/scannet.py', defaults, smoke)

"""ScanNet v2 instance segmentation: PointGroup under WS3D, AP on the 18 instance classes.

    python launch.py --config=configs/scannet_ins.py:5pct --config.data.manual_dir=/data/ScanNet

Tokens: as the semantic configs (configs/common.py): ratios 1pct..100pct, sup_only, smoke and
the ablations, which act on the semantic branch. Wall and floor have no instances.
"""
from configs import common, scannet


def defaults(c):
  scannet.defaults(c)  # the data set's settings, shared with the semantic config
  common.add_instance(c, no_instance_classes=('wall', 'floor'))


def get_config(arg: str = ''):
  return common.get(arg, 'configs/scannet_ins.py', defaults, scannet.smoke)

"""S3DIS instance segmentation (Area 5 for validation): PointGroup under WS3D.

    python launch.py --config=configs/s3dis_ins.py:5pct --config.data.manual_dir=/data/S3DIS

Tokens: as the semantic configs (configs/common.py). Ceiling, floor and wall are not clustered
and not scored, as in PointGroup's S3DIS setting.
"""
from configs import common, s3dis


def defaults(c):
  s3dis.defaults(c)
  common.add_instance(c, no_instance_classes=('ceiling', 'floor', 'wall'))


def get_config(arg: str = ''):
  return common.get(arg, 'configs/s3dis_ins.py', defaults, s3dis.smoke)

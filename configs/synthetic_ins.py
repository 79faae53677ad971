"""Instance segmentation on the embedded synthetic rooms (no download): PointGroup under WS3D.

    python launch.py --config=configs/synthetic_ins.py:smoke   # every stage in a few minutes

Tokens: as the semantic configs (configs/common.py). Floor and wall have no instances.
"""
from configs import common, synthetic


def defaults(c):
  synthetic.fine_rooms(c)
  common.add_instance(c, no_instance_classes=('floor', 'wall'))
  c.train.batch_size, c.train.labeled_batch, c.train.unlabeled_batch = 4, 2, 2
  c.train.steps = 300
  # The rooms have ~2 cm point spacing at 20k points: a larger ball than ScanNet's meshes need.
  c.instance.cluster_radius = c.instance.shift_radius = 0.08
  c.instance.cluster_min_points = 20
  c.instance.min_instance_points = 20
  c.instance.eval_min_region_size = 20


def smoke(c):
  synthetic.smoke(c)
  c.instance.max_proposals = 32


def get_config(arg: str = ''):
  return common.get(arg, 'configs/synthetic_ins.py', defaults, smoke, default_ratio='10pct')

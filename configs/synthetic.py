"""The embedded default: procedurally generated indoor rooms (10 classes), no download needed.

    python launch.py --config=configs/synthetic.py            # about 28 minutes on 2 CPU cores
    python launch.py --config=configs/synthetic.py:smoke      # about 4 minutes: everything shrunk

Tokens: see configs/common.py (ratios 1pct..100pct, sup_only, smoke, ablations); 10pct by default.
"""
from configs import common


def defaults(c):
  c.data.name = 'synthetic'
  # built on first use (array_record, ~10 s for the rooms) in the TFDS default, ~/tensorflow_datasets
  c.data.num_train = 24
  c.data.num_val = 4
  c.data.points_per_scene = 20000
  c.data.room_seed = 0  # seed offset of the generated rooms (another offset: rooms nobody tuned on)
  c.data.voxel_size = 0.05
  c.data.num_threads = 2

  c.model.backbone = 'minkunet14'
  c.model.width_scale = 0.5
  c.model.chunk = 256  # small rooms have few pairs per level
  c.model.embed_dim = 32

  c.boundary.backbone, c.boundary.width_scale = 'minkunet14', 0.5
  c.boundary.steps, c.boundary.batch_size, c.boundary.quality_scenes = 100, 2, 4

  c.train.batch_size, c.train.labeled_batch, c.train.unlabeled_batch = 4, 2, 2
  c.train.steps = 300
  c.train.log_every, c.train.checkpoint_every, c.train.eval_every = 20, 100, 0
  c.train.keep_checkpoints = 2
  c.loss.max_regions = 512
  c.eval.ply_scenes = 2


def smoke(c):
  c.data.num_train, c.data.num_val, c.data.points_per_scene = 4, 2, 8000


def get_config(arg: str = ''):
  return common.get(arg, 'configs/synthetic.py', defaults, smoke, default_ratio='10pct')

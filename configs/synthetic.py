"""The embedded default: procedurally generated indoor rooms (10 classes), no download needed.

    python launch.py --config=configs/synthetic.py            # about 8 minutes on 2 CPU cores (20 without the fused kernel)
    python launch.py --config=configs/synthetic.py:smoke      # about 4 minutes: everything shrunk

The default is the label-efficiency benchmark's scale and schedule (``FULL`` in
ws3d_jax/bench/label_efficiency.py; docs/results.md, section 0): 200 training rooms of 8,000
points, 8 cm voxels, a quarter-width MinkUNet14, one labeled and one unlabeled room a step for
2000 steps with the learning rate decayed to 0. Its first 30% of the steps train on the labeled
rooms alone (``train.labeled_warmup``), so at 10% labels and seed 0 it is the benchmark's ws3d
run of that split, whose three seeds and sup_only baseline the README quotes.

Tokens: see configs/common.py (ratios 1pct..100pct, sup_only, smoke, ablations); 10pct by default.
"""
from configs import common

FILE, DEFAULT_RATIO = 'configs/synthetic.py', '10pct'


def shared(c):
  """What every setting of the generated rooms has."""
  c.data.name = 'synthetic'
  # built on first use (array_record) in the TFDS default, ~/tensorflow_datasets
  c.data.room_seed = 0  # seed offset of the generated rooms (another offset: rooms nobody tuned on)
  c.data.num_threads = 2
  c.model.backbone = c.boundary.backbone = 'minkunet14'
  c.model.chunk = 256  # small rooms have few pairs per level
  c.model.embed_dim = 32
  c.boundary.batch_size = 2
  c.train.keep_checkpoints = 2
  c.loss.max_regions = 512
  c.eval.ply_scenes = 2


def defaults(c):
  """The label-efficiency benchmark's scale (its Scale, FULL)."""
  shared(c)
  c.data.num_train, c.data.num_val, c.data.points_per_scene, c.data.voxel_size = 200, 24, 8000, 0.08
  c.model.width_scale = c.boundary.width_scale = 0.25
  c.boundary.steps, c.boundary.quality_scenes = 150, 24
  c.train.batch_size, c.train.labeled_batch, c.train.unlabeled_batch = 2, 1, 1
  c.train.steps = 2000
  c.train.log_every, c.train.checkpoint_every, c.train.eval_every = 50, 1000, 1000
  c.train.labeled_warmup = True
  c.optim.schedule = 'cosine'
  # The capacity ladder's lowest rung (level-0 voxels a batch) and headroom, the benchmark's: the
  # WS3D step then compiles for 4 rungs, the labeled-only step for 1.
  c.buckets.min_voxels, c.buckets.headroom = 16384, 1.5
  c.eval.export = ('ply',)


def fine_rooms(c):
  """Few rooms of 20,000 points at 5 cm voxels (the main job before the benchmark's scale): what
  the smoke run shrinks and the instance config (configs/synthetic_ins.py) trains on."""
  shared(c)
  c.data.num_train, c.data.num_val, c.data.points_per_scene, c.data.voxel_size = 24, 4, 20000, 0.05
  c.model.width_scale = c.boundary.width_scale = 0.5
  c.boundary.steps, c.boundary.quality_scenes = 100, 4
  c.train.batch_size, c.train.labeled_batch, c.train.unlabeled_batch = 4, 2, 2
  c.train.steps = 300
  c.train.log_every, c.train.checkpoint_every, c.train.eval_every = 20, 100, 0


def smoke(c):
  c.data.num_train, c.data.num_val, c.data.points_per_scene = 4, 2, 8000


def get_config(arg: str = ''):
  _, flags = common.parse_tokens(arg, FILE, DEFAULT_RATIO)
  # The smoke run shrinks the fine rooms, not the benchmark's scale: the suite's tests and their
  # margins (tests/train/test_learning.py) were measured there.
  return common.get(arg, FILE, fine_rooms if 'smoke' in flags else defaults, smoke, default_ratio=DEFAULT_RATIO)

"""The embedded default: procedurally generated indoor rooms, no download needed.

    python launch.py --config=configs/synthetic.py            # a few minutes on 2 CPU cores
    python launch.py --config=configs/synthetic.py:smoke      # a minute: everything shrunk

Variant tokens (comma separated): ``smoke``.
"""
import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  tokens = [t for t in arg.split(',') if t]
  unknown = set(tokens) - {'smoke'}
  if unknown:
    raise ValueError(f'unknown config token(s) {sorted(unknown)} for synthetic.py; known: smoke')

  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = 'synthetic'
  c.data.data_dir = 'data/tfds'  # built here on first use (array_record, ~10 s for the rooms)
  c.data.num_train = 24
  c.data.num_val = 4
  c.data.points_per_scene = 20000
  c.data.voxel_size = 0.05
  c.data.augment = ml_collections.ConfigDict(dict(rotate=6.2832, flip_prob=0.5, scale=(0.9, 1.1), jitter=0.005,
                                                  colour_jitter=0.05, colour_features=True))

  c.model = ml_collections.ConfigDict()
  c.model.backbone = 'minkunet14'
  c.model.width_scale = 0.5
  c.model.impl = 'pairs'  # submanifold dataflow: 'pairs' or 'dense', or one per stride
  c.model.compute_dtype = 'float32'
  c.model.chunk = 256  # pairs per chunk; small rooms have few pairs per level

  c.buckets = ml_collections.ConfigDict(dict(headroom=1.25, growth=1.25, min_voxels=1024))

  c.optim = ml_collections.ConfigDict(dict(lr=1e-3, decay_factor=0.2, decay_every_epochs=50))

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 4
  c.train.steps = 300
  c.train.log_every = 20
  c.train.checkpoint_every = 100
  c.train.keep_checkpoints = 2

  if 'smoke' in tokens:
    c.data.num_train, c.data.num_val, c.data.points_per_scene = 4, 2, 8000
    c.model.width_scale = 0.25
    c.train.batch_size, c.train.steps, c.train.log_every, c.train.checkpoint_every = 2, 6, 2, 3
  return c

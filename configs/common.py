"""What every WS3D config shares, and the variant tokens of ``configs/<data set>.py:<tokens>``.

Tokens (comma separated, any order):
  1pct 5pct 10pct 15pct 20pct 25pct 30pct 40pct 100pct   labeled share of the training points
  sup_only         the baseline: labeled scenes and cross-entropy alone, same steps and labeled batch
                   (Table 5, Case 9)
  smoke            everything shrunk to about four minutes on 2 CPU cores; every stage still runs
  transductive     the evaluation scenes (without labels) join the unlabeled set
  bf16             bfloat16 compute (float32 parameters, losses and BatchNorm statistics)
  paper            the paper-literal schedule: every term at weight 1 from step 0 (no warm-up, no ramp)
  sup_contrast     add this project's supervised region contrast on labeled scenes (off by default)
  Table 5 ablations of the paper, one switch each (Case 1 is the full method, no token):
  no_boundary      Case 2: w_ij = 0 for every pair (no boundary network)
  no_pairwise      Case 3: the unary energy term alone
  no_energy_h      Case 4: H_ij = 1 in the energy (no confidence mask)
  no_contrast_h    Case 5: every unlabeled region in the contrast, confident or not
  last_stage       Case 6: region contrast on the last encoder stage only (not multi-stage)
  no_contrast      Case 7: no region contrast on unlabeled scenes
  no_sce           Case 8: no supervised cross-entropy branch (the paper's "SCE" column)

The default schedule (docs/method_notes.md, "Schedule") follows the field's semi-supervised
codebases and the label-efficiency benchmark (docs/results.md): a labeled-only warm-up for the
first ``loss.warmup`` of the steps, a sigmoid ramp of the unlabeled weights over the next
``loss.rampup``, and unlabeled weights of 0.1.
"""
from __future__ import annotations

import ml_collections

RATIOS = {f'{p}pct': p / 100 for p in (1, 5, 10, 15, 20, 25, 30, 40, 100)}
ABLATIONS = ('no_boundary', 'no_pairwise', 'no_energy_h', 'no_contrast_h', 'last_stage', 'no_contrast', 'no_sce')
FLAGS = ('sup_only', 'smoke', 'transductive', 'bf16', 'paper', 'sup_contrast') + ABLATIONS
# Table 5 of the paper: case number -> tokens.
TABLE5_CASES = {1: '', 2: 'no_boundary', 3: 'no_pairwise', 4: 'no_energy_h', 5: 'no_contrast_h', 6: 'last_stage',
                7: 'no_contrast', 8: 'no_sce', 9: 'sup_only'}


def parse_tokens(arg: str, file: str, default_ratio: str) -> tuple[float, set]:
  tokens = [t.strip() for t in (arg or '').split(',') if t.strip()]
  unknown = [t for t in tokens if t not in RATIOS and t not in FLAGS]
  if unknown:
    raise ValueError(f'{file}: unknown config token(s) {unknown}; known: ratios {sorted(RATIOS, key=RATIOS.get)} '
                     f'and {list(FLAGS)}')
  ratios = [t for t in tokens if t in RATIOS]
  if len(ratios) > 1:
    raise ValueError(f'{file}: more than one label ratio in {arg!r}: {ratios}')
  return RATIOS[ratios[0] if ratios else default_ratio], set(tokens) - set(ratios)


def base_config() -> ml_collections.ConfigDict:
  """Paper defaults (METHOD.md, "Training"); each data set's file sets what differs."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = 'semantic'  # or 'instance' (add_instance): ws3d_jax/train/tasks/

  c.data = ml_collections.ConfigDict()
  c.data.name = ''
  c.data.data_dir = '~/tensorflow_datasets'  # TFDS data dir; built there from manual_dir on first use
  c.data.manual_dir = ''  # the downloaded data set (not needed once built)
  c.data.eval_split = 'validation'
  c.data.holdout = ''  # scene id prefixes taken out of train and evaluated on instead (small samples)
  c.data.skip_bad_scenes = False  # build without scenes that fail to read (each logged and counted), not stop
  c.data.label_ratio = 0.05
  c.data.split_seed = 0
  c.data.split_file = ''  # a split.json to reuse instead of making one
  c.data.transductive = False
  c.data.voxel_size = 0.05
  c.data.num_threads = 4
  c.data.augment = ml_collections.ConfigDict(dict(rotate=6.2832, flip_prob=0.5, scale=(0.9, 1.1), jitter=0.005,
                                                  colour_jitter=0.05, colour_features=True))

  c.model = ml_collections.ConfigDict()
  c.model.backbone = 'minkunet34'
  c.model.width_scale = 1.0
  # Submanifold dataflow: 'pairs', 'dense' or 'fused' (the CPU kernel that `bash setup.sh` builds), or
  # one per stride; 'auto' is 'fused' where it is built and the compute dtype is float32, else 'pairs'.
  c.model.impl = 'auto'
  c.model.chunk = 512
  c.model.compute_dtype = 'float32'
  c.model.embed_dim = 64  # projection head output, per contrasted stage

  c.boundary = ml_collections.ConfigDict()
  c.boundary.enabled = True
  c.boundary.backbone = 'minkunet14'
  c.boundary.width_scale = 1.0
  c.boundary.steps = 2000
  c.boundary.batch_size = 8
  c.boundary.focal_alpha = 2.0
  c.boundary.threshold = 0.0  # 0: the F1-maximising threshold on the labeled scenes; else a fixed probability
  c.boundary.cache_dir = ''  # default <workdir>/boundary
  c.boundary.quality_scenes = 8  # evaluation scenes its precision / recall are logged on
  # A workdir (typically the sup_only run of the split) whose checkpoint of boundary.init_step (0:
  # its latest) initialises the boundary network: every layer of the main network's backbone with
  # the boundary network's name and shape (all but the classifier when the backbones agree).
  c.boundary.init_from = ''
  c.boundary.init_step = 0

  c.loss = ml_collections.ConfigDict()
  c.loss.w_ce = 1.0
  c.loss.w_sup_contrast = 1.0  # weight of the supervised region contrast when loss.supervised_contrast is on
  c.loss.w_energy = 0.1  # the paper's weight is 1 (token paper)
  c.loss.w_contrast = 0.1
  c.loss.warmup = 0.3  # fraction of the steps before the unlabeled terms switch on (GPC's prepare_iter)
  c.loss.rampup = 0.1  # fraction of the steps over which they then ramp to full weight
  c.loss.eps = 0.5
  c.loss.gamma = 0.8
  c.loss.tau = 0.1
  c.loss.boundary_labels = True
  c.loss.pairwise_energy = True
  c.loss.energy_confidence_mask = True
  c.loss.contrast_confidence_mask = True
  c.loss.region_contrast = True
  c.loss.last_stage_only = False
  c.loss.supervised_ce = True  # the paper's "SCE" branch (Table 5, Case 8 turns it off)
  c.loss.supervised_contrast = False  # this project's addition (token sup_contrast)
  c.loss.normalize_energy = True
  c.loss.same_scene_negatives = False
  c.loss.max_regions = 2048

  # pin: the lowest rung holds the largest batch the run can draw (one compile per step function,
  # every batch padded to it); worth it where compiles cost more than padding (small CPU runs).
  c.buckets = ml_collections.ConfigDict(dict(headroom=1.25, growth=1.25, min_voxels=1024, pin=False))
  # schedule: 'step' (the paper's: x decay_factor every decay_every_epochs), 'cosine' or 'poly'
  # (to 0 over the run; poly_power for 'poly'): ws3d_jax/train/run_builder.py
  c.optim = ml_collections.ConfigDict(dict(lr=1e-3, schedule='step', decay_factor=0.2, decay_every_epochs=50,
                                           poly_power=0.9, grad_clip=0.0))

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 16  # the paper's batch; an epoch is len(train) // batch_size steps
  c.train.labeled_batch = 8  # of which labeled scenes
  c.train.unlabeled_batch = 8  # and unlabeled scenes (0 for sup_only, which keeps the schedule)
  c.train.epochs = 500
  c.train.steps = 0  # > 0 overrides epochs
  c.train.log_every = 50
  c.train.checkpoint_every = 1000
  c.train.checkpoint_minutes = 5.0  # also a checkpoint at the first logged step this long after the last (0: off)
  c.train.keep_checkpoints = 3
  c.train.eval_every = 5000  # 0: only at the end
  c.train.init_from = ''  # a workdir (typically the sup_only run of the same split) to continue from
  c.train.init_step = 0  # its checkpoint to start at (0: its latest); the run then continues from that step
  # The first loss.warmup of the steps on labeled scenes alone (the sup_only step: no unlabeled
  # branch, half the work), as the label-efficiency benchmark's WS3D arm trains; off: the WS3D
  # step with the unlabeled terms at weight 0 (docs/training.md, "Schedule").
  c.train.labeled_warmup = False
  # A rerun of a workdir stops when its config changes the model, data, split or objective of the
  # run there; these fields (comma separated, or 'all') are accepted instead (docs/training.md).
  c.train.resume_changes = ''

  c.eval = ml_collections.ConfigDict()
  c.eval.checkpoint = 'best'  # for --mode=eval: 'best', 'latest' or a step
  c.eval.export = ('official', 'ply')
  c.eval.ply_scenes = 8  # coloured .ply files for the first scenes only (they are large)
  c.eval.tensorboard_scenes = 2  # prediction and ground truth as TensorBoard point clouds (final evaluation)
  c.eval.max_scenes_during_training = 0  # 0: all
  return c


def apply_tokens(c: ml_collections.ConfigDict, ratio: float, flags: set) -> ml_collections.ConfigDict:
  """Each token changes only what it names, so a field a data set's file set stays as it set it
  unless a token asks otherwise."""
  c.data.label_ratio = ratio
  if 'transductive' in flags:
    c.data.transductive = True
  if 'bf16' in flags:
    c.model.compute_dtype = 'bfloat16'
  l = c.loss
  switches = {'no_boundary': 'boundary_labels', 'no_pairwise': 'pairwise_energy', 'no_energy_h':
              'energy_confidence_mask', 'no_contrast_h': 'contrast_confidence_mask', 'no_contrast': 'region_contrast',
              'no_sce': 'supervised_ce'}
  for token, field in switches.items():
    if token in flags:
      l[field] = False
  if 'last_stage' in flags:
    l.last_stage_only = True
  if 'sup_contrast' in flags:
    l.supervised_contrast = True
  if 'paper' in flags:
    l.w_energy = l.w_contrast = 1.0
    l.warmup = l.rampup = 0.0
  if 'sup_only' in flags:
    # Same labeled batch and steps; no unlabeled scenes, no WS3D terms.
    l.w_sup_contrast = l.w_energy = l.w_contrast = 0.0
    l.supervised_contrast = False
    l.warmup = l.rampup = 0.0
    c.train.unlabeled_batch = 0
    c.boundary.enabled = False
  return c


def shrink_for_smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """About four minutes on 2 CPU cores (mostly compiles), every stage included."""
  c.model.backbone, c.model.width_scale, c.model.embed_dim, c.model.chunk = 'minkunet14', 0.25, 16, 256
  c.boundary.backbone, c.boundary.width_scale, c.boundary.steps, c.boundary.batch_size = 'minkunet14', 0.25, 4, 2
  c.boundary.quality_scenes = 1
  c.train.batch_size, c.train.labeled_batch, c.train.unlabeled_batch = 2, 1, 1
  if c.loss.w_energy == 0 and c.loss.w_contrast == 0:
    c.train.unlabeled_batch = 0
  c.train.steps, c.train.log_every, c.train.checkpoint_every, c.train.eval_every = 6, 2, 3, 0
  c.train.keep_checkpoints = 2
  c.loss.max_regions = 256
  c.eval.ply_scenes = 1
  c.data.num_threads = 2
  return c


def get(arg: str, file: str, defaults, smoke=None, default_ratio: str = '5pct') -> ml_collections.ConfigDict:
  """base config -> the data set's defaults -> tokens -> smoke (shared, then the data set's).

  ``defaults`` and ``smoke`` are functions that edit the config in place."""
  ratio, flags = parse_tokens(arg, file, default_ratio)
  c = base_config()
  defaults(c)
  apply_tokens(c, ratio, flags)
  if 'smoke' in flags:
    shrink_for_smoke(c)
    if smoke is not None:
      smoke(c)
  return c


def add_instance(c: ml_collections.ConfigDict, no_instance_classes: tuple) -> ml_collections.ConfigDict:
  """PointGroup under WS3D (METHOD.md, "Instance segmentation"): the instance section and the
  paper's instance schedule (580 epochs, batch 8)."""
  c.task = 'instance'
  c.train.epochs = 580
  c.train.batch_size, c.train.labeled_batch, c.train.unlabeled_batch = 8, 4, 4
  i = c.instance = ml_collections.ConfigDict()
  i.no_instance_classes = no_instance_classes  # e.g. wall and floor: never clustered, not in AP
  i.cluster_radius = 0.03  # metres, ball radius on the original coordinates (PointGroup)
  i.shift_radius = 0.03  # on the offset-shifted coordinates
  i.cluster_min_points = 50  # smaller clusters are not proposals
  i.w_offset = 1.0  # offset L1 + direction loss
  i.w_score = 1.0  # ScoreNet BCE
  i.score_start = 0.33  # fraction of the steps before the ScoreNet trains (PointGroup's prepare epochs)
  i.score_fg, i.score_bg = 0.75, 0.25  # soft ScoreNet target: IoU 0.25 -> 0, 0.75 -> 1
  i.score_hidden = 32
  i.max_proposals = 256  # per device and batch while training
  i.nms_iou = 0.3
  i.score_threshold = 0.09
  i.min_instance_points = 100  # predicted instances smaller than this are dropped
  i.eval_min_region_size = 100  # ScanNet protocol: ground-truth instances smaller than this are ignored
  return c

"""Instance segmentation under WS3D: the pieces of the instance ``Task`` the trainer runs.

    model       PointGroupNet (WS3DNet + offset head + ScoreNet)
    objective   the WS3D objective on the semantic logits + offset L1/direction + ScoreNet BCE
    proposals   host-side clustering (geometry/cluster.py) of the labeled scenes of a batch, on
                the current model's predictions, once ``instance.score_start`` of the steps are
                done (PointGroup's "prepare epochs"): the ScoreNet learns to rate them
    evaluation  semantic -> offsets -> clusters on both coordinate sets -> ScoreNet -> NMS ->
                ScanNet-protocol AP (AP, AP@50, AP@25) plus the semantic mIoU; exports in the
                ScanNet benchmark instance format and coloured .ply

Clustering is on the host because connected components have no static shape; it costs one
extra forward pass and a sub-second clustering per training step in the score stage, and is
the only host round trip of that step (docs/training.md).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ws3d_jax.data import pipeline
from ws3d_jax.evaluation import semantic
from ws3d_jax.evaluation import instance_ap
from ws3d_jax.geometry import cluster
from ws3d_jax.losses.instance_objective import InstanceObjective, score_targets
from ws3d_jax.losses.objective import Objective
from ws3d_jax.losses.targets import Instances
from ws3d_jax.models.pointgroup import PointGroupNet, Proposals
from ws3d_jax.models.ws3d import WS3DNet
from ws3d_jax.train import evaluate
from ws3d_jax.train.steps import BatchReader, predict_step, semantic_targets
from ws3d_jax.train.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class InstanceSettings:
  """``config.instance`` (configs/common.py, ``add_instance``, says what each field is), and the
  data set's class names, which ``no_instance_classes`` names."""
  class_names: tuple
  no_instance_classes: tuple = ()
  cluster_radius: float = 0.03
  shift_radius: float = 0.03
  cluster_min_points: int = 50
  w_offset: float = 1.0
  w_score: float = 1.0
  score_start: float = 0.33
  score_fg: float = 0.75
  score_bg: float = 0.25
  score_hidden: int = 32
  max_proposals: int = 256
  nms_iou: float = 0.3
  score_threshold: float = 0.09
  min_instance_points: int = 100
  eval_min_region_size: int = 100

  @property
  def ignore_ids(self) -> tuple:
    """The class ids of ``no_instance_classes`` (never clustered, not in AP)."""
    unknown = [n for n in self.no_instance_classes if n not in self.class_names]
    if unknown:
      raise ValueError(f'instance.no_instance_classes: {unknown} are not classes of the data set '
                       f'({list(self.class_names)})')
    return tuple(self.class_names.index(n) for n in self.no_instance_classes)


def make_model(ws3d: WS3DNet, settings: InstanceSettings) -> PointGroupNet:
  return PointGroupNet(ws3d=ws3d, score_hidden=settings.score_hidden)


def make_objective(objective: Objective, settings: InstanceSettings) -> InstanceObjective:
  return InstanceObjective(semantic=objective, w_offset=settings.w_offset, w_score=settings.w_score)


# --- proposals -----------------------------------------------------------------------------------

def cluster_scene(xyz, offsets, semantic_pred, settings: InstanceSettings) -> cluster.Proposals:
  i = settings
  return cluster.propose(xyz, offsets, semantic_pred, radius=i.cluster_radius, min_points=i.cluster_min_points,
                         ignore_classes=i.ignore_ids, shift_radius=i.shift_radius)


def pack_proposals(groups: list, max_proposals: int, members: int) -> tuple[Proposals, int]:
  """Padded proposals from (point indices into the batch, ScoreNet target) per proposal, in
  priority order: those past ``max_proposals`` or past the membership capacity are left out.
  Returns (proposals, number left out)."""
  out = Proposals.empty(max_proposals, members)
  k = 0
  for j, (points, target) in enumerate(groups[:max_proposals]):
    if k + len(points) > members:
      return out, len(groups) - j
    out.point[k:k + len(points)] = points
    out.id[k:k + len(points)] = j
    out.valid[j] = True
    out.target[j] = target
    k += len(points)
  return out, max(0, len(groups) - max_proposals)


def proposal_members(props: cluster.Proposals) -> list:
  """The point indices of each proposal, in proposal order."""
  order = np.argsort(props.proposal_idx, kind='stable')
  return np.split(props.point_idx[order], np.cumsum(props.sizes())[:-1])


def batch_proposals(logits, offsets, shard, settings: InstanceSettings, max_proposals: int) -> tuple[Proposals, int]:
  """Proposals of the labeled scenes of one shard (a data.pipeline.Batch without its device
  axis), largest first, each with its ScoreNet target (PointGroup's soft target of its best IoU
  with a ground-truth instance)."""
  view = shard.views[0]
  point_batch, instance = shard.point_batch, shard.instance
  groups = []
  for b in np.unique(point_batch[point_batch >= 0]):
    idx = np.flatnonzero(point_batch == b)
    gt = instance[idx]
    if not (gt > 0).any():
      continue  # an unlabeled scene: no targets for its proposals
    props = cluster_scene(view.xyz[idx], offsets[idx], logits[idx].argmax(-1), settings)
    if not props.num_proposals:
      continue
    _, local_gt = np.unique(gt, return_inverse=True)  # 0 stays 0: it is the smallest id
    best = cluster.proposal_gt_iou(props, local_gt.astype(np.int32)).max(axis=1, initial=0.0)
    targets = np.asarray(score_targets(best, settings.score_fg, settings.score_bg))
    groups += [(idx[m], t) for m, t in zip(proposal_members(props), targets)]
  groups.sort(key=lambda g: -len(g[0]))
  return pack_proposals(groups, max_proposals, len(shard.proposals.id))


def make_before_step(settings: InstanceSettings, eval_model, total_steps: int):
  """The host hook of the training loop: after ``instance.score_start`` of the steps, each
  shard's proposal arrays are filled from the current model's predictions on its first view."""
  start = int(settings.score_start * total_steps)
  warned = False

  def before_step(state, step, batch):
    nonlocal warned
    if not settings.w_score or step <= start:
      return batch
    filled = []
    for d in range(batch.proposals.id.shape[0]):
      shard = jax.tree.map(lambda x: x[d], batch.on_device())
      variables = jax.tree.map(lambda x: x[d], {'params': state.params, 'batch_stats': state.batch_stats})
      view = shard.views[0]
      out, _ = predict_step(variables, view.replace(xyz=None, offset_target=None), batch.caps, eval_model,
                            ('logits', 'offsets'), xyz=view.xyz)
      proposals, dropped = batch_proposals(np.asarray(out['logits']), np.asarray(out['offsets']), shard, settings,
                                           batch.proposals.valid.shape[1])
      if dropped and not warned:
        warned = True
        logging.warning('step %d: %d proposals past instance.max_proposals=%d left out of the ScoreNet batch '
                        '(the largest are kept); raise it if this repeats', step, dropped,
                        settings.max_proposals)
      filled.append(proposals)
    return batch.replace(proposals=pipeline.stack_trees(filled))

  return before_step


# --- evaluation ----------------------------------------------------------------------------------

def predict_scene(variables, scene: dict, ev: evaluate.EvalSpec, profile, model) -> dict:
  """Semantic classes and scored, NMS-filtered instance masks of one whole scene."""
  i = ev.task_settings
  n = len(scene['xyz'])
  arrays, caps = evaluate.scene_arrays(scene, ev.voxel_size, profile)
  out = evaluate.predict_arrays(variables, arrays, caps, model, ('logits', 'offsets'), xyz=arrays.xyz)
  logits, offsets = out['logits'][:n], out['offsets'][:n]
  pred = logits.argmax(-1)
  props = cluster_scene(scene['xyz'], offsets, pred, i)
  empty = {'semantic': pred, 'masks': np.zeros((0, n), bool), 'classes': np.zeros(0, np.int32),
           'scores': np.zeros(0, np.float32)}
  if not props.num_proposals:
    return empty
  # Proposal capacity in powers of two, so that scenes with similar counts share a compile.
  capacity = 1 << int(np.ceil(np.log2(max(props.num_proposals, 8))))
  members = proposal_members(props)
  order = sorted(range(len(members)), key=lambda j: -len(members[j]))
  proposals, _ = pack_proposals([(members[j], 0.0) for j in order], capacity, 2 * caps.points)
  classes = props.semantic[order]
  score_logits = evaluate.predict_arrays(variables, arrays, caps, model, ('proposal_scores',), xyz=arrays.xyz,
                                         proposals=jax.tree.map(jnp.asarray, proposals))['proposal_scores']
  scores = 1.0 / (1.0 + np.exp(-score_logits[:len(order)]))
  masks = np.zeros((len(order), n), bool)
  valid = proposals.id < capacity
  masks[proposals.id[valid], proposals.point[valid]] = True
  keep = cluster.nms(masks, scores, i.nms_iou)
  keep = [k for k in keep if scores[k] > i.score_threshold and masks[k].sum() >= i.min_instance_points]
  if not keep:
    return empty
  keep = np.asarray(keep)
  return {'semantic': pred, 'masks': masks[keep], 'classes': classes[keep].astype(np.int32),
          'scores': scores[keep].astype(np.float32)}


class Scorer:
  """AP on the ScanNet protocol over the scenes added (ScanNet's official evaluator's rules)."""

  def __init__(self, settings: InstanceSettings, class_names):
    ignore_ids = settings.ignore_ids
    self.evaluator = instance_ap.InstanceEvaluator(
        class_names=class_names, instance_classes=[c for c in range(len(class_names)) if c not in ignore_ids],
        min_region_size=settings.eval_min_region_size)

  def add(self, scene: dict, out: dict) -> None:
    self.evaluator.add_scene(scene['scene_id'], scene['semantic'], scene['instance'], out['masks'], out['classes'],
                             out['scores'])

  def result(self) -> dict:
    return self.evaluator.result()


def export_scene(export_dir: Path, scene: dict, out: dict, label_set: str, ev: evaluate.EvalSpec, index: int) -> None:
  formats = set(ev.export)
  if 'official' in formats and label_set == 'scannet':
    instance_ap.write_scannet_instances(export_dir / 'instance_predictions', scene['scene_id'], out['masks'],
                                          out['classes'], out['scores'])
  if 'ply' in formats and index < ev.ply_scenes:
    instance_ap.write_instance_ply(export_dir / 'instance_ply' / f'{scene["scene_id"]}.ply', scene['xyz'],
                                     out['masks'], out['scores'])
  evaluate.export_semantic(export_dir, scene, out['semantic'], label_set, ev, index)


def write_eval(writer, step: int, summary: dict, conf, class_names, prefix: str = 'val') -> None:
  writer.write_scalars(step, {f'{prefix}/ap': summary['ap'], f'{prefix}/ap50': summary['ap50'],
                              f'{prefix}/ap25': summary['ap25'],
                              **{f'{prefix}/ap50/{k}': v['ap50'] for k, v in summary['per_class'].items()
                                 if v['ap50'] is not None and np.isfinite(v['ap50'])}})
  evaluate.write_semantic_eval(writer, step, summary, conf, class_names, prefix)


def format_summary(summary: dict) -> str:
  return instance_ap.format_table(summary) + '\n' + semantic.format_table(summary)


# --- how the step reads an instance batch ---------------------------------------------------------

def model_inputs(batch, view: int) -> dict:
  """PointGroupNet's extra inputs: the view's point coordinates, and on the first view the
  proposals the ScoreNet rates."""
  return {'xyz': batch.views[view].xyz, 'proposals': batch.proposals if view == 0 else None}


def targets(batch):
  instances = Instances(id=batch.instance, offsets=tuple(v.offset_target for v in batch.views),
                        proposal_target=batch.proposals.target, proposal_valid=batch.proposals.valid)
  return semantic_targets(batch).replace(instances=instances)


TASK = Task(name='instance', metric='ap50', make_model=make_model, make_objective=make_objective,
            reader=BatchReader(targets=targets, model_inputs=model_inputs), predict_scene=predict_scene,
            export_scene=export_scene, write_eval=write_eval, format_summary=format_summary, make_scorer=Scorer,
            before_step=make_before_step, settings_type=InstanceSettings)

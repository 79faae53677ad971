"""WS3D training and evaluation: ``train_and_evaluate(config, workdir, mode)``.

    train:  label split -> boundary network (cached) -> WS3D on two views, data parallel
            -> periodic checkpoints (last N + best val mIoU) -> evaluation -> exports
    eval:   a checkpoint (best, latest or a step) -> evaluation -> exports

The steps themselves are in ``steps.py``; the objective in ``losses/objective.py``; the split and
the branch sources in ``data/sources.py``; the boundary network in ``boundary.py``. What differs
for instance segmentation (``config.task = 'instance'``: PointGroup, proposals, AP) is a
``Task`` from ``instance.py``; the loop, checkpoints and data are shared.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from clu import metric_writers
from flax import jax_utils

from ws3d_jax import progress, sparse
from ws3d_jax.data import pipeline, sources
from ws3d_jax.data.augment import AugmentParams
from ws3d_jax.data.labels import IGNORE_LABEL, PALETTES
from ws3d_jax.evaluation import export, semantic
from ws3d_jax.models import minkunet
from ws3d_jax.train import boundary, checks, memory_maps, steps
from ws3d_jax.train.parts import (device_arrays, epoch_steps, fit_profile, make_model, make_objective,
                                  make_optimizer, pin_profile, read_back, scene_logits)

NUM_LEVELS = minkunet.NUM_LEVELS
LOGGED_TERMS = ('ce', 'sup_contrast', 'energy', 'contrast', 'unlabeled_weight')


# --- batches -------------------------------------------------------------------------------------

def sample_elements(data: sources.Experiment, config, num_views: int = 2) -> list:
  """One batch of the run's shape (labeled + unlabeled scenes), from the first training scenes
  by id: the same scenes whatever the split, so runs of one data set at any ratio or seed fit
  the same bucket profile and share their compiled steps."""
  rng = np.random.default_rng(config.seed)
  aug = AugmentParams.from_config(config.data.augment)
  t = config.train
  branches = [data.labeled] * t.labeled_batch + [data.unlabeled] * t.unlabeled_batch
  names = sorted({e['scene'] for e in data.split['labeled'] + data.split['unlabeled']})
  picks = []
  for i, branch in enumerate(branches):
    source, index = branch.lookup[names[i % len(names)]]
    picks.append(dict(source[index], labeled=branch.labeled))
  return [pipeline.make_element(s, rng, aug, num_views) for s in picks]


# --- evaluation ----------------------------------------------------------------------------------

def predict_scene(variables, scene: dict, config, profile, model) -> np.ndarray:
  """Per-point class of a whole scene (every point: voxel outputs read back through point2voxel)."""
  return np.argmax(scene_logits(variables, scene, config.data.voxel_size, profile, model), -1)


def evaluate(variables, data: sources.Experiment, config, profile, model, max_scenes: int = 0,
             export_dir: Path | None = None) -> tuple[dict, np.ndarray]:
  """Confusion over every point of the evaluation scenes, summarised as each benchmark's
  evaluator does (mIoU over all classes); optionally exports every prediction."""
  num_classes = len(data.class_names)
  conf = np.zeros((num_classes, num_classes), np.int64)
  count = len(data.eval_scenes) if not max_scenes else min(max_scenes, len(data.eval_scenes))
  done = [0]
  with progress.Activity.current().doing(lambda: f'evaluating: {done[0]} of {count} scenes done'):
    for i in range(count):
      scene = data.eval_scenes[i]
      pred = predict_scene(variables, scene, config, profile, model)
      conf += semantic.confusion(pred, scene['semantic'], num_classes, IGNORE_LABEL)
      if export_dir is not None:
        formats = set(config.eval.export)
        if 'ply' in formats and i >= config.eval.ply_scenes:
          formats.discard('ply')
        export.export_predictions(data.label_set, export_dir, scene['scene_id'], scene['xyz'], pred, formats)
      done[0] = i + 1
  return semantic.summarize(conf, data.class_names), conf


def write_point_clouds(writer, step: int, variables, data: sources.Experiment, config, profile, model) -> None:
  """Prediction and ground truth of the first ``eval.tensorboard_scenes`` evaluation scenes as
  coloured point clouds for TensorBoard's mesh plugin (tab "Mesh"), the data set's palette."""
  palette = PALETTES[data.label_set]
  for i in range(min(config.eval.tensorboard_scenes, len(data.eval_scenes))):
    scene = data.eval_scenes[i]
    pred = predict_scene(variables, scene, config, profile, model)
    for kind, ids in (('prediction', pred), ('ground_truth', scene['semantic'])):
      writer.write_summaries(step, *export.point_cloud_summaries(f'scenes/{scene["scene_id"]}/{kind}',
                                                                 scene['xyz'], ids, palette))


def write_eval(writer, step: int, summary: dict, conf: np.ndarray, class_names, prefix: str = 'val') -> None:
  writer.write_scalars(step, {f'{prefix}/miou': summary['miou'], f'{prefix}/accuracy': summary['accuracy'],
                              **{f'{prefix}/iou/{k}': v for k, v in summary['iou'].items() if v is not None}})
  writer.write_images(step, {f'{prefix}/confusion': export.confusion_image(conf, class_names)[None]})


# --- what a task (semantic or instance segmentation) supplies -------------------------------------

@dataclasses.dataclass(frozen=True)
class Task:
  metric: str  # the summary key the best checkpoint is chosen by
  make_model: Callable  # (config, num_classes) -> flax module
  make_objective: Callable  # (config, num_classes) -> objective
  evaluate: Callable  # (variables, data, config, profile, model, max_scenes, export_dir) -> (summary, conf)
  write_eval: Callable  # (writer, step, summary, conf, class_names)
  format_summary: Callable  # summary -> the table for the log
  max_proposals: Callable = lambda config: 0  # proposals per batch (0: no instance arrays)
  before_step: Callable | None = None  # (config, model, total_steps) -> (state, step, batch) -> batch (host)
  write_clouds: Callable | None = None  # (writer, step, variables, data, config, profile, model), final eval


SEMANTIC = Task(metric='miou', make_model=make_model, make_objective=make_objective, evaluate=evaluate,
                write_eval=write_eval, format_summary=semantic.format_table, write_clouds=write_point_clouds)


def task_of(config) -> Task:
  name = config.get('task', 'semantic')
  if name == 'semantic':
    return SEMANTIC
  if name == 'instance':
    from ws3d_jax.train import instance  # noqa: PLC0415  (the semantic task does not need it)
    return instance.TASK
  raise ValueError(f'config.task must be semantic or instance, got {name!r}')


# --- events --------------------------------------------------------------------------------------

def make_writer(logdir: Path):
  """TensorBoard events from the first process only. Not clu's default writer: that one also logs
  every scalar of every logged step as one long line, beside the trainer's own line."""
  if jax.process_index() > 0:
    return metric_writers.MultiWriter([])
  return metric_writers.AsyncWriter(metric_writers.SummaryWriter(str(logdir)))


# --- checkpoints ---------------------------------------------------------------------------------

def checkpoint_managers(workdir: Path, keep: int, metric: str = 'miou') -> tuple:
  """(latest, best): the last ``keep`` periodic checkpoints, and the best one by ``metric``
  (val mIoU, or AP@50 for instances)."""
  latest = ocp.CheckpointManager((workdir / 'checkpoints').absolute(),
                                 options=ocp.CheckpointManagerOptions(max_to_keep=keep))
  best = ocp.CheckpointManager((workdir / 'checkpoints_best').absolute(),
                               options=ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=lambda m: m[metric],
                                                                    best_mode='max'))
  return latest, best


def restore_for_eval(latest, best, which: str, state):
  if which == 'best' and best.best_step() is not None:
    return best.restore(best.best_step(), args=ocp.args.StandardRestore(state)), best.best_step()
  if which in ('best', 'latest'):
    step = latest.latest_step()
  else:
    step = int(which)
  if step is None:
    raise FileNotFoundError(f'no checkpoint to evaluate in {latest.directory}; train first (--mode=train)')
  return latest.restore(step, args=ocp.args.StandardRestore(state)), step


# --- the job -------------------------------------------------------------------------------------

def train_and_evaluate(config, workdir: str, mode: str = 'train') -> dict:
  checks.validate_config(config)
  memory_maps.release_compiled_if_crowded()  # many runs in one process (benchmarks, tests)
  if mode not in ('train', 'eval'):
    raise ValueError(f'mode must be train or eval, got {mode!r}')
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / f'config_{mode}.json').write_text(config.to_json_best_effort(indent=2))  # what this run used
  writer = make_writer(workdir / 'tensorboard')
  data = sources.load_experiment(config, workdir)
  num_classes = len(data.class_names)
  devices = jax.local_device_count()
  t = config.train
  task = task_of(config)
  per_epoch = epoch_steps(len({e['scene'] for e in data.split['labeled'] + data.split['unlabeled']}), config)
  total_steps = t.steps or t.epochs * per_epoch
  latest, best = checkpoint_managers(workdir, t.keep_checkpoints, task.metric)
  if mode == 'train':
    done = completed_metrics(workdir, latest, total_steps)
    if done is not None:
      logging.info('this run is complete: step %d of %d, %s %.1f (%s). Nothing to do; --mode=eval evaluates '
                   'it again, a larger --config.train.steps continues it.', total_steps, total_steps, task.metric,
                   100 * done[task.metric], workdir / 'eval' / 'metrics.json')
      return done

  batcher = pipeline.Batcher(config.data.voxel_size, None, NUM_LEVELS, num_shards=devices,
                             max_proposals=task.max_proposals(config))
  elements = sample_elements(data, config)
  batcher.profile = fit_profile(batcher, elements, config.buckets)
  if config.buckets.pin:
    batcher.profile = pin_profile(batcher, [(data.labeled, t.labeled_batch), (data.unlabeled, t.unlabeled_batch)],
                                  config)
  model = task.make_model(config, num_classes)
  eval_model = model.clone(bn_axis=None)
  tx, schedule = make_optimizer(config.optim, total_steps, per_epoch)
  first = batcher(elements)
  shard0 = jax.tree.map(lambda x: x[0], first['view0'])
  with progress.Compiles('the model initialisation', 'seconds to a minute').around(None):
    state = steps.create_train_state(jax.random.PRNGKey(config.seed), model, tx, shard0, first['caps'])

  if mode == 'eval':
    state, step = restore_for_eval(latest, best, config.eval.checkpoint, state)
    logging.info('evaluating the checkpoint of step %d', step)
    return finish(state, step, data, config, batcher.profile, eval_model, writer, workdir, task)

  if needs_boundary(config, data):
    data.unlabeled.boundary = boundary.boundary_points(config, data, workdir, writer)

  start = 0
  if latest.latest_step() is not None:
    start = latest.latest_step()
    state = latest.restore(start, args=ocp.args.StandardRestore(state))
    logging.info('resumed from the checkpoint of step %d in %s', start, latest.directory)
  elif t.init_from:
    state, start = init_from(t.init_from, t.init_step, state)
  objective = task.make_objective(config, num_classes, total_steps)
  stream = pipeline.ws3d_stream(data.labeled, data.unlabeled, t.labeled_batch, t.unlabeled_batch,
                                config.seed + 1000 * jax.process_index(), batcher,
                                AugmentParams.from_config(config.data.augment), start_step=start,
                                num_threads=config.data.num_threads)
  state = train(state, stream, start, total_steps, model, objective, schedule, data, config, batcher, eval_model,
                writer, latest, best, task)
  summary = finish(state, total_steps, data, config, batcher.profile, eval_model, writer, workdir, task)
  if total_steps not in best.all_steps():
    best.save(total_steps, args=ocp.args.StandardSave(state), metrics={task.metric: summary[task.metric]})
    best.wait_until_finished()
  return summary


def completed_metrics(workdir: Path, latest, total_steps: int) -> dict | None:
  """The final metrics of a run that already reached total_steps and evaluated them, else None."""
  path = workdir / 'eval' / 'metrics.json'
  if latest.latest_step() != total_steps or not path.is_file():
    return None
  try:
    metrics = json.loads(path.read_text())
  except (OSError, ValueError):
    return None  # unreadable: evaluate again rather than trust it
  return metrics if metrics.get('step') == total_steps else None


def init_from(workdir: str, step: int, state):
  """The state of another run's checkpoint (typically the sup_only run of the same split): the
  run continues from that step as if its own first steps had been that run's (same parameters,
  BatchNorm statistics, optimiser state and learning-rate schedule position)."""
  directory = (Path(workdir) / 'checkpoints').absolute()
  manager = ocp.CheckpointManager(directory)
  step = step or manager.latest_step()
  if step is None or step not in manager.all_steps():
    raise FileNotFoundError(f'train.init_from: no checkpoint of step {step} in {directory} '
                            f'(it has {sorted(manager.all_steps())}); train that run first or set train.init_step')
  try:
    restored = manager.restore(step, args=ocp.args.StandardRestore(state))
  except (ValueError, KeyError) as e:
    raise ValueError(f'train.init_from: the checkpoint of step {step} in {directory} does not fit this model '
                     f'(another backbone, width or number of classes?): {str(e).splitlines()[0]}') from None
  logging.info('initialised from step %d of %s', step, directory)
  return restored, step


def needs_boundary(config, data) -> bool:
  return bool(config.boundary.enabled and config.loss.w_energy and config.loss.boundary_labels
              and config.train.unlabeled_batch and len(data.unlabeled))


def train(state, stream, start, total_steps, model, objective, schedule, data, config, batcher, eval_model, writer,
          latest, best, task: Task = SEMANTIC):
  """The optimisation loop. Host synchronisation only at log, checkpoint and eval steps (and,
  for instances once the ScoreNet trains, where the proposals are clustered on the host)."""
  t = config.train
  before_step = task.before_step(config, eval_model, total_steps) if task.before_step else None
  state = steps.replicate(state)
  rng = steps.replicate(jax.random.PRNGKey(config.seed + 1))
  nonfinite = jnp.zeros((), jnp.int32)
  last_good = start
  timer = progress.StepTimer('WS3D training', start, total_steps)
  compiles = progress.Compiles('the WS3D train step')
  t0, points, t_steps = time.time(), 0, 0
  with progress.Activity.current().doing(timer.status):
    for step in range(start + 1, total_steps + 1):
      batch = next(stream)
      if before_step is not None:
        batch = before_step(state, step, batch)
      with compiles.around(batch['caps'], progress.caps_detail(batch['caps'])):
        state, metrics = steps.train_step(state, device_arrays(batch), rng, batch['caps'], model, objective)
      timer.dispatched(step, compiles.compiled)
      nonfinite = nonfinite + metrics['nonfinite'][0]
      points += int(batch['view0']['point_valid'].sum())
      t_steps += 1
      is_last = step == total_steps
      # Until the loop has a rate, every step is read back (a host sync a step, for a few
      # steps), and the step that gives the first rate is logged with its ETA; the first step
      # is logged with what its compile cost.
      first_rate = timer.rate() is None and read_back(metrics, timer, step)
      if step % t.log_every == 0 or is_last or step == start + 1 or first_rate:
        m = jax.tree.map(lambda x: np.asarray(x[0]), jax.device_get(metrics))
        timer.synced(step)
        sparse.check_capacity(m.pop('needed'), batch['caps'].voxels + batch['caps'].pairs)
        _stop_if_nonfinite(int(nonfinite), step, last_good, latest.directory)
        elapsed = time.time() - t0
        scalars = {k: float(v) for k, v in m.items() if k != 'nonfinite'}
        scalars.update(lr=float(schedule(step - 1)), points_per_second=points / elapsed,
                       steps_per_second=t_steps / elapsed)
        writer.write_scalars(step, scalars)
        terms = '  '.join(f'{k} {scalars[k]:.4f}' for k in LOGGED_TERMS if k in scalars)
        speed = (f'first step, compile included: {progress.duration(elapsed)}' if step == start + 1
                 else timer.speed())
        logging.info('step %d/%d  loss %.4f  %s  (%s)', step, total_steps, scalars['loss'], terms, speed)
        t0, points, t_steps = time.time(), 0, 0
      evaluate_now = t.eval_every and (step % t.eval_every == 0) and not is_last
      if step % t.checkpoint_every == 0 or is_last or evaluate_now:
        _stop_if_nonfinite(int(nonfinite), step, last_good, latest.directory)
        host_state = jax.device_get(jax_utils.unreplicate(state))
        latest.save(step, args=ocp.args.StandardSave(host_state))
        last_good = step
        if evaluate_now:
          summary, conf = task.evaluate({'params': host_state.params, 'batch_stats': host_state.batch_stats},
                                        data, config, batcher.profile, eval_model,
                                        config.eval.max_scenes_during_training, None)
          task.write_eval(writer, step, summary, conf, data.class_names)
          best.save(step, args=ocp.args.StandardSave(host_state), metrics={task.metric: summary[task.metric]})
          logging.info('step %d: val %s %.1f', step, task.metric, 100 * summary[task.metric])
          append_history(latest.directory.parent, step, task.metric, summary[task.metric])
  latest.wait_until_finished()
  return jax.device_get(jax_utils.unreplicate(state))


def append_history(workdir: Path, step: int, metric: str, value: float) -> None:
  """One line per evaluation during training in <workdir>/eval/history.jsonl (the learning curve
  in a form a script reads without TensorBoard); the final evaluation is eval/metrics.json."""
  path = Path(workdir) / 'eval' / 'history.jsonl'
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open('a') as f:
    f.write(json.dumps({'step': int(step), metric: float(value)}) + '\n')


def _stop_if_nonfinite(count: int, step: int, last_good: int, directory) -> None:
  if count:
    raise FloatingPointError(
        f'the loss, gradient or update became NaN/inf in {count} step(s) up to step {step}; those updates were '
        f'not applied and training stops here. The last good checkpoint (step {last_good}) is kept in '
        f'{directory}. Lower optim.lr, set optim.grad_clip, or check the input data, then run again.')


def finish(state, step, data, config, profile, eval_model, writer, workdir: Path, task: Task = SEMANTIC) -> dict:
  """Final evaluation on every evaluation scene: metrics.json, the log table, TensorBoard,
  predictions in the benchmark's official format and coloured .ply files."""
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  out = workdir / 'eval'
  out.mkdir(exist_ok=True)
  summary, conf = task.evaluate(variables, data, config, profile, eval_model, 0, out)
  logging.info('evaluation at step %d, %d scenes:\n%s', step, len(data.eval_scenes), task.format_summary(summary))
  task.write_eval(writer, step, summary, conf, data.class_names)
  if task.write_clouds is not None and config.eval.tensorboard_scenes:
    task.write_clouds(writer, step, variables, data, config, profile, eval_model)
  writer.flush()
  summary = {**summary, 'step': int(step), 'confusion': conf.tolist(), 'classes': list(data.class_names)}
  tmp = out / 'metrics.json.tmp'
  tmp.write_text(json.dumps(summary, indent=2))
  tmp.replace(out / 'metrics.json')
  return summary

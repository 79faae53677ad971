"""WS3D training and evaluation: ``train_and_evaluate(config, workdir, mode)``.

    train:  label split -> set-up (batcher, model, objective, optimiser) -> boundary network
            (cached) -> WS3D on two views, data parallel, through ``fit`` -> periodic checkpoints
            (last N + best val metric) -> evaluation -> exports
    eval:   a checkpoint (best, latest or a step) -> evaluation -> exports

The config is read once, by ``run_builder.py``; the loop is ``fit.py``, the steps ``steps.py``,
the boundary network ``boundary_network.py``; what differs between semantic and instance
segmentation (``config.task``) is a ``Task`` of ``tasks/``. The objective is in
``losses/objective.py``, the split and the branch sources in ``data/sources.py``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import jax
from clu import metric_writers

from ws3d_jax import files, hosts
from ws3d_jax.data import pipeline, sources
from ws3d_jax.train import boundary_network, config_changes, config_checks, evaluate, fit, mapping_limit, run_builder, steps, tasks
from ws3d_jax.train.checkpoints import Checkpoints, completed_metrics

LOGGED_TERMS = ('ce', 'sup_contrast', 'energy', 'contrast', 'unlabeled_weight')


def train_and_evaluate(config, workdir: str, mode: str = 'train') -> dict:
  config_checks.validate_config(config)
  if mode not in ('train', 'eval'):
    raise ValueError(f'mode must be train or eval, got {mode!r}')
  workdir = Path(workdir)
  files.check_writable(workdir)
  first_process = hosts.writes_outputs()
  # One lock per process: the processes of a multi-host run share the workdir, two runs do not.
  with files.exclusive(workdir, '.lock' if first_process else f'.lock.{jax.process_index()}'):
    files.check_writable(*(workdir / d for d in ('tensorboard', 'eval') + (
        ('checkpoints', 'checkpoints_best') if mode == 'train' else ())))
    mapping_limit.release_compiled_if_crowded()  # many runs in one process (benchmarks, tests)
    metric = tasks.get(config.task).metric
    checkpoints = Checkpoints(workdir, config.train.keep_checkpoints, metric)
    config_changes.check(workdir, config, mode, checkpoints.latest_step() is not None)
    if first_process:
      files.write_text(workdir / f'config_{mode}.json', config.to_json_best_effort(indent=2))  # what this run used
    writer = make_writer(workdir / 'tensorboard')
    data = sources.load_experiment(run_builder.data_spec(config), workdir)
    run = run_builder.build(config, data)
    if mode == 'train':
      done = completed_metrics(workdir, checkpoints, run.total_steps)
      if done is not None:
        logging.info('this run is complete: step %d of %d, %s %.1f (%s). Nothing to do; --mode=eval evaluates '
                     'it again, a larger --config.train.steps continues it.', done['step'], done['step'],
                     metric, 100 * done[metric], workdir / 'eval' / 'metrics.json')
        return done

    state = steps.initial_state(run.train.seed, run.model, run.tx, run.batcher, run.example)
    if mode == 'eval':
      state, step = checkpoints.restore_for_eval(run.evaluation.checkpoint, state)
      logging.info('evaluating the checkpoint of step %d', step)
      return finish(run, state, step, data, writer, workdir)

    data = boundary_network.with_boundary_points(run.boundary, data, workdir, writer)
    t, w = run.train, run.warmup
    state, start = checkpoints.resume(state, t.init_from, t.init_step)
    warm_diverged = None
    if w is not None and start < w.steps:
      stream = pipeline.ws3d_stream(data.labeled, data.unlabeled, t.labeled_batch, 0, t.seed, w.batcher, run.augment,
                                    start_step=start, num_threads=t.num_threads, share=hosts.this_process())
      fitted = train(run, state, stream, start, data, writer, checkpoints, phase=w)
      state, start, warm_diverged = fitted.state, w.steps, fitted.diverged_at
    stream = pipeline.ws3d_stream(data.labeled, data.unlabeled, t.labeled_batch, t.unlabeled_batch, t.seed,
                                  run.batcher, run.augment, start_step=start, num_threads=t.num_threads,
                                  share=hosts.this_process())
    fitted = train(run, state, stream, start, data, writer, checkpoints)
    state = fitted.state
    diverged = warm_diverged if warm_diverged is not None else fitted.diverged_at
    summary = finish(run, state, run.total_steps, data, writer, workdir, diverged)
    checkpoints.save_best(run.total_steps, state, summary[metric])
    checkpoints.wait_until_finished()
    return summary


def train(run: run_builder.Run, state, stream, start: int, data, writer, checkpoints: Checkpoints,
          phase: run_builder.LabeledWarmup | None = None) -> fit.Fitted:
  """The WS3D network from step ``start`` to the end (or, with ``phase``, to the end of the
  labeled-only warm-up, with its objective), evaluated every ``train.eval_every`` steps."""
  t, task = run.train, run.task

  def evaluate_during_training(step: int, host_state) -> None:
    summary, conf = evaluate.evaluate(task, variables_of(host_state), data, run.evaluation, run.batcher.profile,
                                      run.eval_model, run.evaluation.max_scenes_during_training)
    task.write_eval(writer, step, summary, conf, data.class_names)
    checkpoints.save_best(step, host_state, summary[task.metric])
    logging.info('step %d: val %s %.1f', step, task.metric, 100 * summary[task.metric])
    if hosts.writes_outputs():
      append_history(checkpoints.directory.parent, step, task.metric, summary[task.metric])

  name, compile_name = ('labeled-only warm-up', 'the labeled-only step') if phase else (
      'WS3D training', 'the WS3D train step')
  loop = fit.Loop(name=name, step_label='step', compile_name=compile_name, scalar_prefix='',
                  total_steps=phase.steps if phase else run.total_steps, log_every=t.log_every, logged_terms=LOGGED_TERMS,
                  checkpoint_every=t.checkpoint_every, checkpoint_seconds=t.checkpoint_seconds,
                  eval_every=t.eval_every)
  settings = run.evaluation.task_settings
  before_step = task.before_step(settings, run.eval_model, run.total_steps) if task.before_step else None
  objective = phase.objective if phase else run.objective
  return fit.fit(loop, state, stream, run.model, objective, task.reader, jax.random.PRNGKey(t.seed + 1),
                 writer, run.schedule, start, checkpoints, evaluate_during_training, before_step)


def finish(run: run_builder.Run, state, step: int, data, writer, workdir: Path,
           diverged_at: int | None = None) -> dict:
  """Final evaluation on every evaluation scene: metrics.json, the log table, TensorBoard,
  predictions in the benchmark's official format and coloured .ply files. Every process of a
  multi-host run evaluates (each on its own devices, with the same parameters); the first writes.
  A run whose loss diverged (fit.diverging) is marked so in the log line and metrics.json."""
  task, variables = run.task, variables_of(state)
  out = workdir / 'eval' if hosts.writes_outputs() else None
  if out is not None:
    out.mkdir(exist_ok=True)
  ev = run.evaluation
  summary, conf = evaluate.evaluate(task, variables, data, ev, run.batcher.profile, run.eval_model, 0, out)
  mark = f' (DIVERGED: the loss grew 100x by step {diverged_at}; these are the numbers of a diverged run)' \
      if diverged_at is not None else ''
  logging.info('evaluation at step %d, %d scenes%s:\n%s', step, len(data.eval_scenes), mark,
               task.format_summary(summary))
  task.write_eval(writer, step, summary, conf, data.class_names)
  if task.point_clouds and ev.tensorboard_scenes and out is not None:
    evaluate.write_point_clouds(writer, step, task, variables, data, ev, run.batcher.profile, run.eval_model)
  writer.flush()
  summary = {**summary, 'step': int(step), 'confusion': conf.tolist(), 'classes': list(data.class_names),
             'diverged_at_step': diverged_at}
  if out is not None:
    files.write_json(out / 'metrics.json', summary)
  return summary


def variables_of(state) -> dict:
  return {'params': state.params, 'batch_stats': state.batch_stats}


def make_writer(logdir: Path):
  """TensorBoard events from the first process only. Not clu's default writer: that one also logs
  every scalar of every logged step as one long line, beside the trainer's own line."""
  if not hosts.writes_outputs():
    return metric_writers.MultiWriter([])
  return metric_writers.AsyncWriter(metric_writers.SummaryWriter(str(logdir)))


def append_history(workdir: Path, step: int, metric: str, value: float) -> None:
  """One line per evaluation during training in <workdir>/eval/history.jsonl (the learning curve
  in a form a script reads without TensorBoard); the final evaluation is eval/metrics.json."""
  path = Path(workdir) / 'eval' / 'history.jsonl'
  path.parent.mkdir(parents=True, exist_ok=True)
  with path.open('a') as f:
    f.write(json.dumps({'step': int(step), metric: float(value)}) + '\n')

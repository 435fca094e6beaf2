"""The training engine behind `t2t-videoflow-trainer`: train, evaluate, checkpoint, log.

One `Trainer` owns a run: the model and optimizer (built under the strategy's scope),
the distributed train iterator, a `tf.train.CheckpointManager` writing
`OUTPUT_DIR/model.ckpt-N` (see `run_dir`), and TensorBoard writers under
`OUTPUT_DIR/train` and `OUTPUT_DIR/eval`.

A training step (T2T `NextFrameGlow.video_objective_tower`,
`learning_rate.learning_rate_schedule`; docs/t2t.md, Loss and Learning-rate schedule)
on every replica r with its b = B / R clips:

    bpp_i = mean over scored frames of -J_t / (D ln 2)      (model.bits_per_pixel)
    loss_r = sum_i bpp_i / B                                 (B = global batch)
    g = all_reduce_sum(d loss_r / d theta)                   (= d mean_B bpp / d theta)
    Adam(beta1 0.85, beta2 0.997, eps 1e-6), lr = schedule(step before the update)

Exactness of resume: the global step is the optimizer's `iterations`; the
dequantisation noise of clip i of step s's global batch is drawn statelessly under
(random_seed, s) (`model/noise.py`), so it depends neither on the process nor on the
number of replicas; the train iterator (file order, shuffle buffers, window draws) is
saved in the checkpoint. Restoring a checkpoint therefore continues the same sequence
of losses as an uninterrupted run. (Dropout, when a set turns it on, uses TF's stateful
RNG and is not replayed.)

Data-dependent init runs once before step 0 on a separate init batch of
`init_batch_size` clips (T2T `Glow.create_init_batch`, `glow_init_hook.GlowInitHook`;
docs/t2t.md, Data-dependent init), never after a restore. It runs in
cross-replica context, so the assigned values reach every replica of the worker; with
several workers every worker reads the same init batch, and the values are then
averaged across workers so all replicas hold identical variables.

With `weight_ema_decay > 0` the trainer also keeps a moving average of the weights
(`weight_ema.py`), updated after every step, saved in every checkpoint and restored
with it, and used by evaluation.
"""

import contextlib
import dataclasses
import json
import math
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
import tf_keras

from t2t_videoflow.training import distribute
from t2t_videoflow.training import run_dir
from t2t_videoflow.training.restore import DamagedCheckpointError, restore_checkpoint
from t2t_videoflow.training import weight_ema
from t2t_videoflow.data.clips import read_clips
from t2t_videoflow.model.noise import batch_noise
from t2t_videoflow.model.videoflow import build_model
from t2t_videoflow.training.schedules import T2TSchedule
from t2t_videoflow.errors import (DataError, HParamsError, RunDirError, TrainingError,
                                  UsageError)
from t2t_videoflow.evaluation import bpp as bpp_lib
from t2t_videoflow.training.weight_ema import WeightEMA

# Summary image layout: at most this many clips per eval image summary.
_MAX_SUMMARY_CLIPS = 3


# A logged loss above this many times the median of the run's earlier ones counts as
# diverged (with at least `_DIVERGENCE_MIN_POINTS` of them): the NaN guard's "last good"
# checkpoint is the newest saved before the run of diverged losses that ended in it.
DIVERGENCE_FACTOR = 100.0
_DIVERGENCE_MIN_POINTS = 5
_LOSSES_KEPT = 5000          # the newest step losses the guard keeps in memory
TRAIN_LOG = "train_log.jsonl"

# What a full disk or a read-only output dir raises on a write.
WRITE_ERRORS = (tf.errors.PermissionDeniedError, tf.errors.ResourceExhaustedError,
                 tf.errors.FailedPreconditionError, OSError)


def write_error(path, error, latest=None):
    """A one-line TrainingError for a failed write of `path`."""
    reason = (error.message if isinstance(error, tf.errors.OpError)
              else str(error)).strip().splitlines()
    reason = reason[0] if reason else type(error).__name__
    kept = (f" The last checkpoint, {latest}, is intact (checkpoints are written "
            f"under a temporary name and renamed when complete)." if latest else "")
    resume = f" from {latest}" if latest else ""
    return TrainingError(
        f"Cannot write {path} ({type(error).__name__}: {reason}).{kept} Free disk space "
        f"or make --output_dir writable, then run the same command again to "
        f"resume{resume}.")


def create_adam_slots(optimizer, variables):
    """Creates a legacy Keras Adam's variables now: its slots "m" and "v" of
    `variables`, zeros, in the order its own `_create_slots` makes them, then its
    hyperparameters and step counter.

    The slots' initial values come from one zeros tensor per shape: left to
    `add_slot`'s default, every slot builds and deserialises a "zeros" initializer and
    fills its own tensor, about a third of the 2.6 s the paper model's 4,404 slots took
    at start-up (README, start-up).
    """
    zeros = {}
    for slot in ("m", "v"):
        for variable in variables:
            key = (tuple(variable.shape), tf.as_dtype(variable.dtype))
            if key not in zeros:
                zeros[key] = tf.zeros(*key)
            optimizer.add_slot(variable, slot, initializer=zeros[key])
    optimizer._create_all_weights(variables)  # pylint: disable=protected-access


@dataclasses.dataclass
class TrainConfig:
    """What the trainer's flags control beyond the hparams set.

    Attributes:
      output_dir: checkpoints, summaries, hparams.json.
      data_dir: the problem's shards (from t2t-videoflow-datagen).
      train_steps: total global steps of the run.
      eval_steps: dev batches per evaluation (-1: the whole dev set).
      local_eval_frequency: evaluate every this many steps in train_and_evaluate.
      save_checkpoints_steps: checkpoint every this many steps.
      keep_checkpoint_max: checkpoints kept on disk.
      log_every_steps: one progress line (and TensorBoard train scalars) every K steps.
      random_seed: seeds model init, data order, windows and dequantisation noise.
      jit_compile: compile the loss and gradient computation with XLA.
      eval_sample_clips: dev clips sampled for the eval image summary (0: none).
      eval_split: the split evaluation reads ("dev", or "test").
    """
    output_dir: str
    data_dir: str
    train_steps: int
    eval_steps: int = 100
    local_eval_frequency: int = 1000
    save_checkpoints_steps: int = 1000
    keep_checkpoint_max: int = 20
    log_every_steps: int = 10
    random_seed: int = 0
    jit_compile: bool = False
    eval_sample_clips: int = 2
    eval_split: str = "dev"


def _format_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def train_frames_per_clip(hparams):
    """Frames of each training clip: the random window, or the whole clip (T2T
    `NextFrameGlow.get_all_frames`)."""
    if hparams.num_train_frames != -1:
        return hparams.num_train_frames
    return hparams.video_num_input_frames + hparams.video_num_target_frames


def sample_grid(context, truth, samples):
    """Rows `context | truth` and `context | sample` per clip, as one uint8 image each.

    Args:
      context, truth, samples: uint8 `[N, T_c, H, W, C]`, `[N, T, H, W, C]` (twice).

    Returns:
      uint8 `[N, 2 H, (T_c + T) W, C]`.
    """
    def strip(frames):                       # [N, T, H, W, C] -> [N, H, T W, C]
        return tf.concat(tf.unstack(frames, axis=1), axis=2)
    top = strip(tf.concat([context, truth], axis=1))
    bottom = strip(tf.concat([context, samples], axis=1))
    return tf.concat([top, bottom], axis=1)


class Trainer:
    """Trains and evaluates one VideoFlow run (see the module docstring)."""

    def __init__(self, problem, hparams, config, strategy=None, log=print):
        self.problem = problem
        self.hparams = hparams
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.log = log
        self.is_chief = distribute.is_chief(self.strategy)
        self.num_replicas = self.strategy.num_replicas_in_sync
        self.global_batch = hparams.batch_size
        if self.global_batch % self.num_replicas:
            raise HParamsError(f"batch_size={self.global_batch} (global) is not divisible by "
                             f"the {self.num_replicas} replicas.")
        self.replica_batch = self.global_batch // self.num_replicas
        self.frame_shape = (hparams.frame_height, hparams.frame_width,
                            hparams.frame_channels)
        conditional = hparams.gen_mode == "conditional"
        # Leading frames that condition but are not scored (T2T
        # `NextFrameGlow.video_objective_tower`); T2T's
        # unconditional mode scores every frame.
        self.num_context = hparams.video_num_input_frames if conditional else 0
        # Frames of every evaluated clip: the set's context and targets.
        self.eval_frames = hparams.video_num_input_frames + hparams.video_num_target_frames

        self.schedule = T2TSchedule.from_hparams(hparams)
        model_hparams = hparams.copy()
        model_hparams.batch_size = self.replica_batch  # static batch of pointwise
        # Layers built without an explicit seed draw from the global generators: seed
        # them so the same --random_seed always builds the same initial weights.
        keras.utils.set_random_seed(config.random_seed)
        with self.strategy.scope():
            self.model = build_model(model_hparams, self.frame_shape, seed=config.random_seed)
            # The legacy Adam applies each variable's update as one fused op
            # (ResourceApplyAdam); same formula as T2T's (Lazy)Adam for dense gradients.
            # It saved 0.1-0.5 s per paper-size step over the per-op Keras 2 Adam
            # (benchmarks/results/train_step_fused_adam.json).
            self.optimizer = tf_keras.optimizers.legacy.Adam(
                learning_rate=self.schedule,
                beta_1=hparams.optimizer_adam_beta1, beta_2=hparams.optimizer_adam_beta2,
                epsilon=hparams.optimizer_adam_epsilon)
            self.variables = list(self.model.trainable_variables)
            # Slots now, not inside the first traced step (restores then match them).
            create_adam_slots(self.optimizer, self.variables)
            # Moving average of the weights (off in T2T's sets); also built before any
            # restore, so that the checkpoint's averages have somewhere to go.
            self.ema = (WeightEMA(self.variables, hparams.weight_ema_decay,
                                  self.optimizer.iterations)
                        if hparams.weight_ema_decay > 0 else None)

        self.num_workers, self.worker_id = distribute.worker_index(self.strategy)
        self.local_replicas = self.num_replicas // self.num_workers
        self.train_iterator = None
        # The data position is part of the checkpoint (exact resume) on one worker. With
        # several workers each has its own pipeline; see `_make_train_iterator`.
        self._track(self._make_train_iterator() if self.num_workers == 1 else None)
        # The loss and gradients get a function of their own when XLA compiles them, or
        # when several replicas in this process would each trace them (then traced once,
        # called per replica). Otherwise they are traced inline into the step: a nested
        # function costs its own graph, captures of every variable and executor, about
        # 3 s of the paper model's start-up (README, start-up). No AutoGraph here or in
        # the train step: the model's loops are explicit TF ops, and converting its few
        # hundred functions costs seconds of start-up (cpu_small tracing 9.2 -> 7.0 s).
        self._grad_fn = (tf.function(self._loss_and_grads, jit_compile=config.jit_compile,
                                     autograph=False)
                         if config.jit_compile or self.local_replicas > 1
                         else self._loss_and_grads)
        self._train_steps = {}   # condition flag -> tf.function
        self._scorer = bpp_lib.Scorer(self.model, self.num_context, self.replica_batch,
                                      jit_compile=config.jit_compile)
        self._writers = {}
        self.restored_from = None
        self._clock_base = None      # run seconds before this process (train_log.jsonl)
        self._clock_start = None     # perf_counter when this process started training
        # Loss of the step that starts at global step k (on the weights of step k), for
        # the NaN guard's "last good" checkpoint: this process's steps, and the logged
        # points of earlier processes.
        self._losses = {}

    # -- wall clock --------------------------------------------------------------------
    def elapsed_seconds(self):
        """Wall-clock seconds of the run: what `train_log.jsonl` recorded before this
        process (a resumed run continues its clock) plus this process's training time."""
        if self._clock_base is None:
            previous = [r.get("elapsed_seconds", 0.0)
                        for r in train_log(self.config.output_dir).values()]
            self._clock_base = max(previous, default=0.0)
        if self._clock_start is None:
            return self._clock_base
        return self._clock_base + time.perf_counter() - self._clock_start

    # -- data --------------------------------------------------------------------------
    def _make_train_iterator(self, seed_offset=0):
        """This worker's iterator of per-replica batches (a checkpointable tf.data
        iterator; `distribute_datasets_from_function`'s iterators cannot be saved).

        Each step takes `local_replicas` consecutive batches, one per local replica, so
        on one worker R replicas see exactly the clips of one global batch on one device.
        Several workers each keep their share, by example, of the same seeded stream
        (`pipeline.make_dataset`): together they see the clips of one worker's global
        batches. Their iterators are not saved, so on resume they restart with the seed
        offset by the step (no exact data replay).
        """
        context = tf.distribute.InputContext(
            num_input_pipelines=self.num_workers, input_pipeline_id=self.worker_id,
            num_replicas_in_sync=self.num_replicas)
        ds = self.problem.dataset("train", self.config.data_dir, self.hparams,
                                  input_context=context, deterministic=True,
                                  seed=self.config.random_seed + seed_offset)
        return iter(ds)

    def _init_batch(self):
        init_hparams = self.hparams.copy()
        init_hparams.batch_size = self.hparams.init_batch_size
        ds = self.problem.dataset("train", self.config.data_dir, init_hparams,
                                  deterministic=True, seed=self.config.random_seed + 1)
        return next(iter(ds))["video"]

    # -- state -------------------------------------------------------------------------
    @property
    def step(self):
        """The global step: updates applied so far."""
        return int(self.optimizer.iterations.numpy())

    def _track(self, iterator):
        """(Re)builds the checkpoint and its manager over the model, the optimizer and,
        if given, the train iterator (then `self.train_iterator`)."""
        tracked = {"model": self.model, "optimizer": self.optimizer}
        if self.ema is not None:
            tracked[weight_ema.CHECKPOINT_NODE] = self.ema.averages
        if iterator is not None:
            self.train_iterator = tracked["data"] = iterator
        self.checkpoint = tf.train.Checkpoint(**tracked)
        directory = distribute.worker_dir(self.config.output_dir, self.strategy)
        # The manager deletes what the state file lists: make it list only this dir's.
        run_dir.repair_checkpoint_state(directory, log=self.log)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory,
            max_to_keep=self.config.keep_checkpoint_max,
            checkpoint_name=run_dir.CHECKPOINT_NAME)

    def _restore(self, path, with_data):
        """Restores the model, the optimizer, the weight averages and (`with_data`) the
        input position from `path`, asserting that each was in it."""
        nodes = {"optimizer": self.optimizer}
        if self.ema is not None:
            nodes[weight_ema.CHECKPOINT_NODE] = self.ema.averages
        if with_data and self.train_iterator is not None:
            nodes["data"] = self.train_iterator
        restore_checkpoint(path, self.model, nodes)

    def restore_or_initialize(self):
        """Restores the newest valid checkpoint of the run, or runs data-dependent init.

        Each checkpoint is verified before it is read (`run_dir.checkpoint_problem`:
        the index parses, every data shard is complete); newer ones that fail (or fail
        to read in full) are skipped with one log line each, and never deleted.

        Returns:
          The global step training continues from.

        Raises:
          RunDirError: checkpoints exist but none is usable.
        """
        exclude = {}
        said = set()

        def say_once(line):
            if line not in said:
                said.add(line)
                self.log(line)
        while True:
            latest = run_dir.newest_valid_checkpoint(self.config.output_dir, log=say_once,
                                                     exclude=exclude)
            if latest is None:
                break
            try:
                return self._resume_from(latest)
            except DamagedCheckpointError as e:     # seen only when read in full
                exclude[latest] = e.reason
        return self._initialize()

    def _resume_from(self, latest):
        """Restores checkpoint `latest` (see `restore_or_initialize`); returns the step."""
        if not _has_optimizer_state(latest):
            # A model-only checkpoint (t2t-videoflow-import): fine-tune its weights with
            # fresh Adam moments from the step in its name. Its actnorms are marked
            # initialised, and DDI is not run either way.
            restore_checkpoint(latest, self.model, read=True)
            self.optimizer.iterations.assign(run_dir.checkpoint_step(latest) or 0)
            if self.ema is not None:
                self.ema.reset()
            self.restored_from = latest
            if self.train_iterator is None:
                self.train_iterator = self._make_train_iterator(seed_offset=self.step)
            self.log(f"Fine-tuning the model-only checkpoint {latest} (an import) from step "
                     f"{self.step} with fresh Adam moments; data-dependent init is not run.")
            return self.step
        if self.num_workers == 1 and not run_dir.checkpoint_has_node(latest, "data"):
            # Written by several workers, which save no input position: continue on
            # this one worker with the pipeline restarted at the step (as they do).
            self._restore(latest, with_data=False)
            self.restored_from = latest
            self._track(self._make_train_iterator(seed_offset=self.step))
            self.log(f"Restored {latest} (step {self.step}), written by several workers: "
                     "it holds no input position, so the data pipeline restarts with a "
                     "seed offset by the step; data-dependent init is not repeated.")
            return self.step
        self._restore(latest, with_data=True)
        self.restored_from = latest
        if self.train_iterator is None:
            self.train_iterator = self._make_train_iterator(seed_offset=self.step)
        self.log(f"Restored {latest} (step {self.step}); data-dependent init is not "
                 "repeated.")
        return self.step

    def _initialize(self):
        """Data-dependent init of a new run; returns the step (0)."""
        if self.train_iterator is None:
            self.train_iterator = self._make_train_iterator()
        frames = self._init_batch()
        self.log(f"Triggering data-dependent init on {frames.shape[0]} clips of "
                 f"{frames.shape[1]} frames.")
        with self.strategy.scope():
            self.model.data_init(frames, seed=(self.config.random_seed, 1))
            if self.num_workers > 1:
                self._average_variables_across_workers()
            if self.ema is not None:
                self.ema.reset()
        return self.step

    def _average_variables_across_workers(self):
        """Makes DDI values bitwise equal on every worker (mean of equal values)."""
        variables = list(self.model.variables)

        def replica_fn():   # the `initialized` flags are bools: average them as floats
            return tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.MEAN, [tf.cast(v, tf.float32) for v in variables])
        means = self.strategy.run(replica_fn)
        for var, mean in zip(variables, means):
            value = self.strategy.experimental_local_results(mean)[0]
            var.assign(tf.cast(value, var.dtype))

    def _check_finite_state(self):
        """Raises TrainingError if a weight or an Adam slot is not finite, so a poisoned
        update (finite loss and gradients, overflowing step) is never saved."""
        variables = list(self.model.variables) + [
            v for v in self.optimizer.variables() if v.dtype.is_floating]
        if self.ema is not None:
            variables += self.ema.averages
        bad = [v.name for v in variables
               if v.dtype.is_floating and not bool(tf.reduce_all(tf.math.is_finite(v)))]
        if bad:
            # The weights of this step are bad; a checkpoint of this step, if any, was
            # checked when it was saved.
            raise TrainingError(
                f"Non-finite weights after step {self.step} ({len(bad)} variables, e.g. "
                f"{bad[0]}). Stopped without saving; "
                f"{self._last_good(self.step + 1, self.step)}")

    def _last_good(self, bad_step, at):
        """The end of the NaN guard's message: the last good checkpoint (the newest saved
        before the run of diverged losses that ends with step `bad_step`; `at` is the
        step the message names) and what to do; the verdict is also recorded in
        `train_log.jsonl`.

        A checkpoint of step N holds the weights the loss of step N is computed on, and
        a resume from it replays that step exactly: only checkpoints of steps before the
        divergence resume to a finite loss."""
        first = diverged_since(self._losses, bad_step)
        directory = self.manager.directory
        found = run_dir.checkpoints_on_disk(directory)
        good = [p for step, p in found if step < first]
        good = good[-1] if good else None
        after = [p for step, p in found if step >= first]
        if self.is_chief:
            try:
                self._append_log({"step": self.step, "diverged_at_step": first,
                                  "last_good_checkpoint": good and os.path.basename(good),
                                  "saved_after_divergence": [os.path.basename(p)
                                                             for p in after],
                                  "wall_time": time.time()})
            except TrainingError:
                pass                      # a full disk: the message still says it all
        name = ("learning_rate" if self.hparams.learning_rate_schedule == "legacy"
                else "learning_rate_constant")
        value = self.hparams.get(name)
        lower = (f"e.g. --hparams={name}={value / 10:g} --force_hparams; it is {value:g} "
                 "now")
        where = f"from step {first}" if first < bad_step else f"at step {at}"
        names = ", ".join(os.path.basename(p) for p in after)
        if good is None:
            since = f" ({names} saved since)" if after else ""
            return (f"the loss diverged {where} and no checkpoint was saved before "
                    f"that{since}, so none is good. Lower the learning rate ({lower}) and "
                    "train again in a new --output_dir.")
        if not after:
            return (f"the last good checkpoint is {good} (the newest saved before the "
                    f"loss diverged {where}). Lower the learning rate ({lower}) and run "
                    "the command again to resume from it.")
        return (f"the last good checkpoint is {good} (the newest saved before the loss "
                f"diverged {where}; {names} saved since would diverge again). Lower the "
                f"learning rate ({lower}), move {names} out of {directory} (a resume "
                "uses the newest checkpoint; nothing is deleted for you) and run the "
                f"command again to resume from {os.path.basename(good)}.")

    def save(self, bpp=None):
        """Writes a checkpoint at the current step (every task must call it), after
        checking that the state is finite (the losses and gradient norms of the steps
        since the last save were checked as they ran), and records it in
        `train_log.jsonl` with `bpp`, the loss of the step that led to it.

        Raises:
          TrainingError: non-finite state, or the checkpoint could not be written (no
            permission, disk full); the message names the file and what to do.
        """
        self._check_finite_state()
        target = os.path.join(self.manager.directory,
                              f"{run_dir.CHECKPOINT_NAME}-{self.step}")
        try:
            path = self.manager.save(checkpoint_number=self.step)
        except WRITE_ERRORS as e:
            raise write_error(target, e, self.manager.latest_checkpoint) from None
        if not self.is_chief:
            tf.io.gfile.rmtree(os.path.dirname(path))
            return None
        record = {"step": self.step, "checkpoint": os.path.basename(path),
                  "wall_time": time.time()}
        if bpp is not None:
            record["checkpoint_bpp"] = bpp
        self._append_log(record)
        return path

    # -- training ----------------------------------------------------------------------
    def _loss_and_grads(self, video, noise, condition):
        with tf.GradientTape() as tape:
            # This replica's share of the global batch's mean: the replicas' sum is it.
            loss = self.model.loss(video, self.num_context, noise=noise,
                                   condition=condition, training=True) * (
                                       self.replica_batch / self.global_batch)
        return loss, tape.gradient(loss, self.variables)

    def _replica_step(self, video, step, condition):
        ctx = tf.distribute.get_replica_context()
        b = self.replica_batch
        # Clip i of the global batch gets its noise under (seed, step) (model/noise.py):
        # the same numbers whatever the replica count or process (exact resume).
        noise = batch_noise(tf.shape(video),
                            tf.stack([tf.cast(self.config.random_seed, tf.int64), step]),
                            first_clip=ctx.replica_id_in_sync_group * b)
        loss, grads = self._grad_fn(video, noise, condition)
        missing = [v.name for v, g in zip(self.variables, grads) if g is None]
        if missing:
            raise ValueError(f"No gradient for {len(missing)} variables, e.g. {missing[:3]}.")
        loss, *grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [loss, *grads])
        grad_norm = tf.linalg.global_norm(grads)
        if self.hparams.clip_grad_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, self.hparams.clip_grad_norm,
                                              use_norm=grad_norm)
        self.optimizer.apply_gradients(zip(grads, self.variables),
                                       experimental_aggregate_gradients=False)
        if self.ema is not None:
            self.ema.update()
        return loss, grad_norm

    def _train_step_fn(self, condition):
        if condition not in self._train_steps:
            offset = self.worker_id * self.local_replicas

            @tf.function(autograph=False)
            def train_step(iterator):
                batches = [next(iterator)["video"] for _ in range(self.local_replicas)]
                video = self.strategy.experimental_distribute_values_from_function(
                    lambda ctx: batches[ctx.replica_id_in_sync_group - offset])
                step = tf.identity(self.optimizer.iterations)
                loss, grad_norm = self.strategy.run(
                    self._replica_step, args=(video, step, condition))
                first = self.strategy.experimental_local_results
                return first(loss)[0], first(grad_norm)[0], self.schedule(step)
            self._train_steps[condition] = train_step
        return self._train_steps[condition]

    def train_step(self):
        """One training step on the next global batch of the train iterator: the step
        `train` runs (and the step and memory benchmarks time). Returns the metrics
        `{"bpp", "grad_norm", "learning_rate"}` (scalar tensors; the learning rate of
        the step's update, the loss of the weights before it)."""
        condition = self.step > self.hparams.pretrain_steps
        loss, grad_norm, lr = self._train_step_fn(condition)(self.train_iterator)
        return {"bpp": loss, "grad_norm": grad_norm, "learning_rate": lr}

    def train_step_graph(self):
        """The traced graph of `train_step` at the current step (e.g. to count its
        FLOPs); traces it if it was not yet."""
        condition = self.step > self.hparams.pretrain_steps
        return self._train_step_fn(condition).get_concrete_function(
            self.train_iterator).graph

    def train(self, train_steps=None, eval_every=None):
        """Trains to `train_steps`, checkpointing, logging and (optionally) evaluating.

        Args:
          train_steps: the global step to stop at (default `config.train_steps`).
          eval_every: evaluate every this many steps (None: never during training).

        Returns:
          The last logged training bpp.

        Raises:
          TrainingError on a non-finite loss or gradient norm; no checkpoint is written
          from the poisoned state.
        """
        cfg = self.config
        train_steps = cfg.train_steps if train_steps is None else train_steps
        start = self.step
        if start >= train_steps:
            self.log(f"Step {start} >= train_steps {train_steps}: nothing to train.")
            return None
        frames_per_clip = train_frames_per_clip(self.hparams)
        self.log(f"Training {self.problem.name} from step {start} to {train_steps}: global "
                 f"batch {self.global_batch} on {self.num_replicas} replica(s), "
                 f"{frames_per_clip} frames per clip.")
        last_saved = start if self.restored_from else None
        if self.is_chief:
            repair_train_log(self.config.output_dir, log=self.log)
        self.elapsed_seconds()                      # reads the clock of earlier processes
        for logged, record in train_log(self.config.output_dir).items():
            # Logged at step d: the loss of the step that started at d - 1.
            loss = record.get("bpp", record.get("checkpoint_bpp"))
            if isinstance(loss, (int, float)) and logged - 1 < start:
                self._losses.setdefault(logged - 1, float(loss))
        window_start, window_step = time.perf_counter(), start
        run_start = window_start
        self._clock_start = run_start
        bpp = None
        interval_sum, interval_count = 0.0, 0
        try:
            while self.step < train_steps:
                step = self.step
                condition = step > self.hparams.pretrain_steps
                compiling = condition not in self._train_steps
                began = time.perf_counter()
                metrics = self.train_step()
                loss, grad_norm, lr = (metrics["bpp"], metrics["grad_norm"],
                                       metrics["learning_rate"])
                loss, grad_norm = float(loss), float(grad_norm)
                self._losses[step] = loss if math.isfinite(grad_norm) else math.nan
                if len(self._losses) > 2 * _LOSSES_KEPT:    # steps ascend: drop the oldest
                    for k in list(self._losses)[:_LOSSES_KEPT]:
                        del self._losses[k]
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    raise TrainingError(
                        f"Non-finite training loss at step {step}: bpp={loss}, gradient "
                        f"norm={grad_norm}. Stopped without saving; "
                        f"{self._last_good(step, step)}")
                bpp = loss
                interval_sum, interval_count = interval_sum + loss, interval_count + 1
                done = self.step
                if compiling:
                    self.log(f"Step {done} took {time.perf_counter() - began:.1f} s: it "
                             "traced and set up the compiled training step, which happens "
                             "once per process (and once more after pretrain_steps).")
                self._write_step_bpp(done, bpp)
                if done % cfg.log_every_steps == 0 or done == train_steps:
                    now = time.perf_counter()
                    rate = (done - window_step) / max(now - window_start, 1e-9)
                    eta = (train_steps - done) / rate if rate > 0 else float("inf")
                    self.log(f"step {done}/{train_steps}  bpp {bpp:.4f}  lr {float(lr):.3g}  "
                             f"grad_norm {grad_norm:.3g}  {rate:.2f} steps/s  "
                             f"{rate * self.global_batch * frames_per_clip:.1f} frames/s  "
                             f"ETA {_format_duration(eta)}")
                    self._write_train_log(done, bpp, float(lr), grad_norm, rate,
                                          interval_sum / interval_count)
                    interval_sum, interval_count = 0.0, 0
                    window_start, window_step = now, done
                if done % cfg.save_checkpoints_steps == 0:
                    self.save(bpp=bpp)
                    last_saved = done
                if eval_every and done % eval_every == 0 and done < train_steps:
                    self.evaluate()
                    window_start = time.perf_counter()
        except KeyboardInterrupt:
            self.log(f"Interrupted at step {self.step}: saving a checkpoint.")
            self.save()
            raise
        if last_saved != self.step:
            self.save(bpp=bpp)
        elapsed = time.perf_counter() - run_start
        self.log(f"Finished at step {self.step} in {_format_duration(elapsed)}; "
                 f"checkpoint {self.manager.latest_checkpoint}.")
        return bpp

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(
                os.path.join(self.config.output_dir, name))
        return self._writers[name]

    def _write_step_bpp(self, step, bpp):
        """TensorBoard `train/bpp_per_step`: every step's single-batch bpp."""
        if self.is_chief:
            with self._writer("train").as_default(step=step):
                tf.summary.scalar("bpp_per_step", bpp)

    def _write_train_log(self, step, bpp, lr, grad_norm, steps_per_sec, bpp_mean):
        """TensorBoard `train/`: `bpp` is the mean over the steps since the last log
        point (a smooth curve; every step's value is `bpp_per_step`), `bpp_vs_seconds`
        the same mean with the run's wall-clock seconds as its x axis; and one
        `train_log.jsonl` line."""
        if not self.is_chief:
            return
        elapsed = self.elapsed_seconds()
        with self._writer("train").as_default(step=step):
            tf.summary.scalar("bpp", bpp_mean)
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("grad_norm", grad_norm)
            tf.summary.scalar("steps_per_sec", steps_per_sec)
            tf.summary.scalar("elapsed_hours", elapsed / 3600.0)
        with self._writer("train").as_default(step=int(elapsed)):
            tf.summary.scalar("bpp_vs_seconds", bpp_mean)
        self._append_log({"step": step, "bpp": bpp, "bpp_interval_mean": bpp_mean,
                          "learning_rate": lr, "grad_norm": grad_norm,
                          "wall_time": time.time(), "elapsed_seconds": elapsed})

    def _append_log(self, record):
        """One JSON line in OUTPUT_DIR/train_log.jsonl (training points and evals)."""
        path = os.path.join(self.config.output_dir, TRAIN_LOG)
        try:
            with tf.io.gfile.GFile(path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except WRITE_ERRORS as e:
            raise write_error(path, e, self.manager.latest_checkpoint) from None

    # -- evaluation --------------------------------------------------------------------
    def evaluate(self, eval_steps=None, step=None):
        """Dev-set bits per pixel (`_evaluate`) of the weights evaluation uses: the
        moving average of the weights when the run keeps one (`weight_ema_decay`), else
        the trained weights, which are left as they were."""
        with self._evaluated_weights():
            return self._evaluate(eval_steps, step)

    def _evaluate(self, eval_steps, step):
        """Dev-set bits per pixel with the problem's protocol (docs/t2t.md, Bits per pixel on BAIR).

        Scores every frame after `video_num_input_frames` of each dev clip (BAIR: the 10
        targets after 3 context frames), averaged over frames and clips, with
        `evaluation.bpp` (the code of `t2t-videoflow-eval --experiment=bpp`): every clip
        of the split (or of the first `eval_steps` batches), the noise of clip i drawn
        from (random_seed, i), so evaluating the same weights twice, or with the eval
        tool, gives the same number.

        Returns:
          dict with `bpp` (mean), `bpp_per_frame` (list) and `clips`.
        """
        eval_steps = self.config.eval_steps if eval_steps is None else eval_steps
        step = self.step if step is None else step
        first = []

        def batches():
            clips = read_clips(self.problem, self.config.data_dir, self.hparams,
                               self.config.eval_split, self.eval_frames, self.replica_batch)
            for k, video in enumerate(clips):
                if 0 <= eval_steps <= k:
                    return
                if not first:
                    first.append(video)
                yield video

        try:
            scored = bpp_lib.score_split(self._scorer, batches(),
                                         seed=self.config.random_seed)
        except UsageError:
            raise DataError(f"The {self.config.eval_split} split of {self.problem.name!r} "
                            f"in {self.config.data_dir!r} holds no clip.") from None
        per_frame = np.asarray(scored["bpp_per_frame"])
        clips = scored["clips"]
        result = {"bpp": scored["bpp"], "bpp_per_frame": per_frame.tolist(),
                  "clips": clips}
        first = first[0]
        self.log(f"eval step {step}: dev bpp {result['bpp']:.4f} over {clips} clips "
                 f"(per target frame: {', '.join(f'{v:.3f}' for v in per_frame)})")
        if self.is_chief:
            elapsed = self.elapsed_seconds()
            self._append_log({"step": step, "eval_bpp": result["bpp"],
                              "eval_bpp_per_frame": result["bpp_per_frame"],
                              "eval_clips": clips, "wall_time": time.time(),
                              "elapsed_seconds": elapsed})
            with self._writer("eval").as_default(step=int(elapsed)):
                tf.summary.scalar("bpp_vs_seconds", result["bpp"])
            with self._writer("eval").as_default(step=step):
                tf.summary.scalar("bpp", result["bpp"])
                for i, value in enumerate(result["bpp_per_frame"]):
                    # Frame numbers count from the first scored frame (target 1).
                    tf.summary.scalar(f"bpp_target_frame_{i + 1:02d}", value)
                if self.config.eval_sample_clips > 0:
                    tf.summary.image("context_truth_sample", self._sample_summary(first),
                                     max_outputs=_MAX_SUMMARY_CLIPS)
        return result

    def _sample_summary(self, video):
        """`context | truth` over `context | sample` at the set's temperature."""
        n = min(self.config.eval_sample_clips, _MAX_SUMMARY_CLIPS, video.shape[0])
        n_in = self.hparams.video_num_input_frames
        context, truth = video[:, :n_in], video[:, n_in:]
        samples = self.model.sample(context, truth.shape[1],
                                    temperature=self.hparams.temperature,
                                    seed=self.config.random_seed)
        return sample_grid(context[:n], truth[:n], samples[:n])

    def continuous_eval(self, timeout_secs=None):
        """Evaluates each new checkpoint of the run until the final step is evaluated
        or no new checkpoint appears for `timeout_secs`."""
        results = {}
        for path in run_dir.new_checkpoints(self.config.output_dir, timeout_secs):
            self._read_weights(path)
            step = run_dir.checkpoint_step(path)
            self.log(f"Evaluating {path}")
            results[step] = self.evaluate(step=step)
            if step is not None and step >= self.config.train_steps:
                break
        return results

    def restore_for_eval(self, checkpoint_path=None):
        """Loads the model weights of the newest (or the given) checkpoint."""
        path = run_dir.resolve_checkpoint(self.config.output_dir, checkpoint_path,
                                          log=self.log)
        self._read_weights(path)
        return run_dir.checkpoint_step(path)

    def _read_weights(self, path):
        """The model weights of a checkpoint and, when the run keeps a moving average,
        its averages (a checkpoint without them: the averages := the weights)."""
        restore_checkpoint(path, self.model, read=True, partial=True)
        if self.ema is None:
            return
        if weight_ema.has_averages(path):
            weight_ema.read_averages(self.ema.averages, path)
        else:
            self.ema.reset()

    def _evaluated_weights(self):
        """Context in which the model holds the weights that evaluation uses: the
        moving average when the run keeps one, else the trained weights."""
        return self.ema.averaged_weights() if self.ema is not None else contextlib.nullcontext()


def _has_optimizer_state(checkpoint_path):
    """Whether a checkpoint holds the trainer's optimizer (not a model-only import)."""
    return run_dir.checkpoint_has_node(checkpoint_path, "optimizer")


def _parse_log(path, text, log=None):
    """`(records, torn)`: the JSON objects of `train_log.jsonl`'s text in order, and the
    length of its complete part when its last line is torn (None if it is not).

    An unparseable last line is what a crash in the middle of a write leaves: skipped,
    with one `log` note. An unparseable line before it is an error.

    Raises:
      RunDirError naming the file and the line.
    """
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    records, torn, offset = [], None, 0
    for i, line in enumerate(lines):
        start, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not an object with an integer \"step\"")
        except ValueError as e:
            if i == last:
                torn = start
                if log:
                    log(f"Note: skipped the torn last line of {path} (line {i + 1}, "
                        f"{len(line)} characters: what a crash in the middle of a write "
                        "leaves).")
                break
            raise RunDirError(f"{path}, line {i + 1}, is not a JSON log record ({e}); "
                              "fix or delete that line (checkpoints do not depend on "
                              "it).") from None
        records.append(record)
    return records, torn


def _read_log_text(path):
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def train_log(output_dir, log=None):
    """Reads `train_log.jsonl` as {step: record}.

    A step's training point and its evaluation (`eval_bpp`, `eval_bpp_per_frame`) are
    merged into one record; for a key written twice (after a resume) the later wins.
    A torn last line is skipped (one note to `log`, if given); any other line that is
    not a record raises RunDirError naming the file and the line.
    """
    records = {}
    path = os.path.join(output_dir, TRAIN_LOG)
    text = _read_log_text(path)
    if text is not None:
        for record in _parse_log(path, text, log)[0]:
            records.setdefault(record["step"], {}).update(record)
    return records


def repair_train_log(output_dir, log=print):
    """Makes `train_log.jsonl` valid JSON lines before a trainer appends to it: drops a
    torn last line (with one note), and ends a last line that has no newline, so the
    next record starts a line of its own. Only the trainer holding the output dir (its
    chief) calls it.

    Raises:
      RunDirError: a line before the last is not a record.
    """
    path = os.path.join(output_dir, TRAIN_LOG)
    text = _read_log_text(path)
    if not text:
        return
    _, torn = _parse_log(path, text, log)
    fixed = text[:torn] if torn is not None else text
    if fixed and not fixed.endswith("\n"):
        fixed += "\n"
    if fixed != text:
        try:
            run_dir.write_json_atomic(path, fixed)
        except WRITE_ERRORS as e:
            raise write_error(path, e) from None


def diverged_since(losses, bad_step):
    """The first step of the run of diverged losses that ends with step `bad_step`.

    `losses` maps a step k to the loss computed on the weights of step k. Walking back
    from `bad_step`, a loss counts as diverged when it is not finite, or (given at least
    `_DIVERGENCE_MIN_POINTS` finite ones before `bad_step`) above `DIVERGENCE_FACTOR`
    times their median (over the last 100). A checkpoint of a step before the result
    holds weights whose loss was finite and had not exploded.
    """
    steps = sorted(k for k in losses if k < bad_step)
    finite = [losses[k] for k in steps if math.isfinite(losses[k])]
    median = (statistics.median(finite[-100:])
              if len(finite) >= _DIVERGENCE_MIN_POINTS else None)
    first = bad_step
    for k in reversed(steps):
        value = losses[k]
        if math.isfinite(value) and not (median and median > 0
                                         and value > DIVERGENCE_FACTOR * median):
            break
        first = k
    return first

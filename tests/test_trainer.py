"""The training engine: schedules, steps, checkpoints and exact resume, DDI, NaN guard,
evaluation, TensorBoard, XLA (in process, tiny set on 16x16 shapes)."""

import glob
import math
import os
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from t2t_videoflow.config import registry
from t2t_videoflow.training import run_dir
from t2t_videoflow.training import trainer as trainer_lib
from t2t_videoflow.training.schedules import T2TSchedule, learning_rate_at

PROBLEM = "stochastic_shapes_tiny"


@pytest.fixture
def data_dir(tiny_data_dir):
    """The session's shared tiny shards (conftest); read only."""
    return tiny_data_dir


def make_trainer(data_dir, output_dir, train_steps=4, overrides="", **config):
    hparams = registry.create_hparams("videoflow_tiny", overrides, PROBLEM)
    hparams.train_steps = train_steps
    problem = registry.problem(PROBLEM)
    run_dir.save_run(str(output_dir), hparams, PROBLEM, "videoflow_tiny")
    defaults = dict(output_dir=str(output_dir), data_dir=data_dir, train_steps=train_steps,
                    eval_steps=2, save_checkpoints_steps=2, log_every_steps=1,
                    random_seed=3, eval_sample_clips=1)
    defaults.update(config)
    logs = []
    trainer = trainer_lib.Trainer(problem, hparams, trainer_lib.TrainConfig(**defaults),
                                  log=logs.append)
    trainer.logs = logs
    return trainer


def losses(output_dir):
    return {step: r["bpp"] for step, r in trainer_lib.train_log(str(output_dir)).items()
            if "bpp" in r}


# -- schedules ---------------------------------------------------------------------------

@pytest.mark.parametrize("schedule,kwargs,expected", [
    # legacy: 0.1 * 0.002 * 0.01 ** ((100 - step) / 100), then 2e-4 (T2T
    # `learning_rate.legacy_learning_rate_schedule`).
    ("legacy", {}, {0: 2e-6, 50: 2e-5, 100: 2e-4, 5000: 2e-4}),
    ("constant*linear_warmup", dict(learning_rate_constant=3e-4, warmup_steps=10000),
     {0: 0.0, 5000: 1.5e-4, 10000: 3e-4, 400000: 3e-4}),
    # The paper: linear decay to 0 over the last 150K of 600K steps.
    ("constant*linear_warmup*linear_decay",
     dict(learning_rate_constant=3e-4, warmup_steps=10000, decay_steps=150000,
          train_steps=600000),
     {2500: 7.5e-5, 450000: 3e-4, 525000: 1.5e-4, 600000: 0.0, 700000: 0.0}),
])
def test_schedule_values(schedule, kwargs, expected):
    for step, value in expected.items():
        got = float(learning_rate_at(step, schedule, **kwargs))
        assert got == pytest.approx(value, rel=1e-5, abs=1e-12), (schedule, step)


def test_schedule_from_hparams_and_unknown_name():
    hp = registry.hparams("videoflow_bpp")
    schedule = T2TSchedule.from_hparams(hp)
    assert float(schedule(10000)) == pytest.approx(3e-4)
    assert float(schedule(600000 - 75000)) == pytest.approx(1.5e-4)
    with pytest.raises(ValueError, match="Unknown learning_rate_schedule 'cosine'"):
        T2TSchedule("cosine")


# -- training ----------------------------------------------------------------------------

def test_train_evaluate_checkpoints_and_tensorboard(data_dir, tmp_path):
    trainer = make_trainer(data_dir, tmp_path, train_steps=4, keep_checkpoint_max=1)
    assert trainer.restore_or_initialize() == 0
    assert any("Triggering data-dependent init on 16 clips" in line for line in trainer.logs)
    trainer.train()
    assert trainer.step == 4
    result = trainer.evaluate()
    # Dev protocol of the tiny set: 1 context frame, both targets scored, 2 batches of 2.
    assert result["clips"] == 4 and len(result["bpp_per_frame"]) == 2
    assert math.isfinite(result["bpp"]) and 0 < result["bpp"] < 50
    # Same weights, same seeds: the same number.
    assert trainer.evaluate()["bpp"] == result["bpp"]
    assert sorted(losses(tmp_path)) == [1, 2, 3, 4]
    assert [os.path.basename(p) for p in glob.glob(str(tmp_path / "model.ckpt-*.index"))] \
        == ["model.ckpt-4.index"]                          # keep_checkpoint_max=1
    assert any(line.startswith("step 4/4  bpp ") and "steps/s" in line and "ETA" in line
               for line in trainer.logs)
    # One compiled step (pretrain_steps = -1: every step is conditional), timed once.
    assert [line.split(" took ")[0] for line in trainer.logs
            if "traced and set up the compiled training step" in line] == ["Step 1"]

    def tags(subdir):
        found = {}
        for path in glob.glob(str(tmp_path / subdir / "events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    found.setdefault(value.tag, []).append(event.step)
        return found
    train_tags = tags("train")
    assert {"bpp", "bpp_per_step", "learning_rate", "grad_norm", "steps_per_sec",
            "elapsed_hours", "bpp_vs_seconds"} <= set(train_tags)
    assert train_tags["bpp"] == [1, 2, 3, 4]
    eval_tags = tags("eval")
    assert eval_tags["bpp"] == [4, 4]
    # One scalar per scored target frame, and the sample strip, at each evaluation.
    assert eval_tags["bpp_target_frame_01"] == eval_tags["bpp_target_frame_02"] == [4, 4]
    assert eval_tags["context_truth_sample"] == [4, 4]
    assert len(eval_tags["bpp_vs_seconds"]) == 2


def _scalars(directory, tag):
    """{step: value} of a scalar tag in the event files under `directory`."""
    values = {}
    for path in sorted(glob.glob(os.path.join(str(directory), "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_tensorboard_train_bpp_is_the_interval_mean_and_clock_resumes(data_dir, tmp_path):
    trainer = make_trainer(data_dir, tmp_path, train_steps=4, log_every_steps=2,
                           save_checkpoints_steps=4)
    trainer.restore_or_initialize()
    trainer.train()
    per_step = _scalars(tmp_path / "train", "bpp_per_step")
    mean = _scalars(tmp_path / "train", "bpp")
    assert sorted(per_step) == [1, 2, 3, 4] and sorted(mean) == [2, 4]
    assert mean[2] == pytest.approx((per_step[1] + per_step[2]) / 2, rel=1e-6)
    assert mean[4] == pytest.approx((per_step[3] + per_step[4]) / 2, rel=1e-6)
    assert per_step[1] != per_step[2]          # the mean is not one step's value
    first_clock = trainer_lib.train_log(str(tmp_path))[4]["elapsed_seconds"]
    assert first_clock > 0
    del trainer
    # A second process continues the run's clock instead of restarting it at 0.
    resumed = make_trainer(data_dir, tmp_path, train_steps=6, log_every_steps=2)
    resumed.restore_or_initialize()
    resumed.train()
    records = trainer_lib.train_log(str(tmp_path))
    assert records[6]["elapsed_seconds"] > first_clock
    hours = _scalars(tmp_path / "train", "elapsed_hours")
    assert hours[6] == pytest.approx(records[6]["elapsed_seconds"] / 3600, rel=1e-5)


def test_sample_grid_layout():
    context = tf.fill([2, 1, 4, 4, 3], tf.constant(1, tf.uint8))
    truth = tf.fill([2, 2, 4, 4, 3], tf.constant(2, tf.uint8))
    samples = tf.fill([2, 2, 4, 4, 3], tf.constant(3, tf.uint8))
    grid = trainer_lib.sample_grid(context, truth, samples).numpy()
    assert grid.shape == (2, 8, 12, 3)
    assert (grid[:, :, :4] == 1).all()
    assert (grid[:, :4, 4:] == 2).all() and (grid[:, 4:, 4:] == 3).all()


def test_resume_is_exact_and_skips_ddi(data_dir, tmp_path):
    straight = make_trainer(data_dir, tmp_path / "straight", train_steps=4)
    straight.restore_or_initialize()
    straight.train()

    first = make_trainer(data_dir, tmp_path / "resumed", train_steps=2)
    first.restore_or_initialize()
    first.train()
    del first
    second = make_trainer(data_dir, tmp_path / "resumed", train_steps=4)

    def no_ddi(*args, **kwargs):
        raise AssertionError("data-dependent init ran after a restore")
    second.model.data_init = no_ddi
    assert second.restore_or_initialize() == 2
    assert any("data-dependent init is not repeated" in line for line in second.logs)
    second.train()
    want, got = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert sorted(got) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert got[step] == pytest.approx(want[step], rel=1e-6), step
    for a, b in zip(straight.model.variables, second.model.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_one_worker_resumes_a_checkpoint_of_several_workers(data_dir, tmp_path):
    """Several workers save no input position: one worker restores the model and the
    optimizer, says that the pipeline restarts, and trains on, saving its own."""
    first = make_trainer(data_dir, tmp_path / "run", train_steps=2)
    first.restore_or_initialize()
    first.train()
    # The checkpoint a multi-worker run writes: model and optimizer only.
    latest = first.manager.latest_checkpoint
    weights = [v.numpy() for v in first.model.variables]
    for suffix in (".index", ".data-00000-of-00001"):
        os.remove(latest + suffix)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=first.model, optimizer=first.optimizer),
        str(tmp_path / "run"), max_to_keep=3, checkpoint_name="model.ckpt").save(2)
    has_node = run_dir.checkpoint_has_node
    assert not has_node(latest, "data")
    del first
    second = make_trainer(data_dir, tmp_path / "run", train_steps=4)
    assert second.restore_or_initialize() == 2
    assert any("written by several workers" in line for line in second.logs)
    for want, got in zip(weights, second.model.variables):
        np.testing.assert_array_equal(got.numpy(), want)
    second.train()
    assert sorted(losses(tmp_path / "run")) == [1, 2, 3, 4]
    assert has_node(second.manager.latest_checkpoint, "data")


def test_non_finite_loss_stops_without_saving(data_dir, tmp_path):
    trainer = make_trainer(data_dir, tmp_path, train_steps=4)
    trainer.restore_or_initialize()
    trainer.train(train_steps=2)
    good = [v.numpy() for v in trainer.model.variables]
    real_bpp = trainer.model.bits_per_pixel

    def poisoned(*args, **kwargs):
        return real_bpp(*args, **kwargs) * float("nan")
    trainer.model.bits_per_pixel = poisoned
    trainer._grad_fn = tf.function(trainer._loss_and_grads)  # pylint: disable=protected-access
    trainer._train_steps = {}                                 # pylint: disable=protected-access
    with pytest.raises(trainer_lib.TrainingError,
                       match=r"Non-finite training loss at step 2: .*model\.ckpt-2"):
        trainer.train()
    assert run_dir.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-2")
    assert not glob.glob(str(tmp_path / "model.ckpt-3*"))
    restored = make_trainer(data_dir, tmp_path, train_steps=4)
    restored.restore_or_initialize()
    assert len(restored.model.variables) == len(good)
    for v, value in zip(restored.model.variables, good):
        np.testing.assert_array_equal(v.numpy(), value)


def test_pretrain_steps_switch_conditioning_off_then_on(data_dir, tmp_path):
    trainer = make_trainer(data_dir, tmp_path, train_steps=3, overrides="pretrain_steps=1")
    trainer.restore_or_initialize()
    trainer.train()
    # Steps 0 and 1 use the marginal priors (step <= pretrain_steps), step 2 the
    # conditional ones: two traced step functions.
    assert sorted(trainer._train_steps) == [False, True]  # pylint: disable=protected-access


@pytest.mark.slow
def test_xla_gives_the_same_losses(data_dir, tmp_path):
    plain = make_trainer(data_dir, tmp_path / "plain", train_steps=2)
    plain.restore_or_initialize()
    plain.train()
    xla = make_trainer(data_dir, tmp_path / "xla", train_steps=2, jit_compile=True)
    xla.restore_or_initialize()
    xla.train()
    want, got = losses(tmp_path / "plain"), losses(tmp_path / "xla")
    for step in (1, 2):
        assert got[step] == pytest.approx(want[step], rel=1e-4), step


def test_batch_must_split_across_replicas(data_dir, tmp_path):
    hparams = registry.create_hparams("videoflow_tiny", "batch_size=3", PROBLEM)

    class TwoReplicas:
        num_replicas_in_sync = 2
    with pytest.raises(ValueError, match="batch_size=3 .* not divisible by the 2 replicas"):
        trainer_lib.Trainer(registry.problem(PROBLEM), hparams,
                            trainer_lib.TrainConfig(str(tmp_path), data_dir, 2),
                            strategy=TwoReplicas())


def test_memory_efficient_backprop_trains_to_the_same_losses(data_dir, tmp_path):
    plain = make_trainer(data_dir, tmp_path / "plain", train_steps=3)
    plain.restore_or_initialize()
    plain.train()
    recompute = make_trainer(data_dir, tmp_path / "recompute", train_steps=3,
                             overrides="memory_efficient_backprop=true")
    recompute.restore_or_initialize()
    recompute.train()
    want, got = losses(tmp_path / "plain"), losses(tmp_path / "recompute")
    for step in (1, 2, 3):
        assert got[step] == pytest.approx(want[step], rel=1e-4), step


def test_ctrl_c_saves_a_checkpoint_at_the_current_step(data_dir, tmp_path):
    trainer = make_trainer(data_dir, tmp_path, train_steps=6, save_checkpoints_steps=100)
    trainer.restore_or_initialize()
    real_step_fn = trainer._train_step_fn                   # pylint: disable=protected-access

    def interrupt_after_step_3(condition):
        step_fn = real_step_fn(condition)

        def run(iterator):
            result = step_fn(iterator)
            if trainer.step == 3:
                raise KeyboardInterrupt
            return result
        return run
    trainer._train_step_fn = interrupt_after_step_3         # pylint: disable=protected-access
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert run_dir.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-3")
    resumed = make_trainer(data_dir, tmp_path, train_steps=6)
    assert resumed.restore_or_initialize() == 3


def test_continuous_eval_scores_new_checkpoints_until_the_last(data_dir, tmp_path):
    trainer = make_trainer(data_dir, tmp_path, train_steps=4, eval_sample_clips=0)
    trainer.restore_or_initialize()
    trainer.train(train_steps=2)                          # checkpoint 2 exists
    watcher = make_trainer(data_dir, tmp_path, train_steps=4, eval_sample_clips=0)
    results = {}
    thread = threading.Thread(target=lambda: results.update(
        watcher.continuous_eval(timeout_secs=120)))
    thread.start()
    while 2 not in results and thread.is_alive() and not any(
            "Evaluating" in line and "ckpt-2" in line for line in watcher.logs):
        time.sleep(0.2)
    trainer.train()                                       # writes checkpoint 4
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert sorted(results) == [2, 4]                      # stops after the last step
    assert results[4]["bpp"] == pytest.approx(trainer.evaluate()["bpp"], rel=1e-6)
    assert results[2]["bpp"] != results[4]["bpp"]


def test_create_adam_slots_makes_independent_zero_slots():
    """One zeros tensor per shape seeds the slots, yet every slot is its own variable:
    an update of one variable's moments leaves those of a same-shaped one at zero, and
    the slots are those the optimizer makes by itself."""
    import tf_keras

    variables = [tf.Variable(tf.ones([2, 3])), tf.Variable(tf.ones([2, 3])),
                 tf.Variable(tf.ones([4]))]
    optimizer = tf_keras.optimizers.legacy.Adam(0.1)
    trainer_lib.create_adam_slots(optimizer, variables)
    reference = tf_keras.optimizers.legacy.Adam(0.1)
    reference._create_all_weights(variables)  # pylint: disable=protected-access
    assert sorted(v.name for v in optimizer.variables()) == sorted(
        v.name for v in reference.variables())
    for variable in variables:
        for slot in ("m", "v"):
            value = optimizer.get_slot(variable, slot)
            assert value.shape == variable.shape and not np.any(value.numpy())
    optimizer.apply_gradients([(tf.fill([2, 3], 2.0), variables[0])])
    assert np.all(optimizer.get_slot(variables[0], "m").numpy() != 0)
    for slot in ("m", "v"):
        assert not np.any(optimizer.get_slot(variables[1], slot).numpy())

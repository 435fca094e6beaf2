"""The moving average of the weights (`weight_ema_decay`): the update rule, exact resume,
evaluation with the averages, and inference tools reading them (tiny set, 16x16 shapes)."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_videoflow.config import registry
from t2t_videoflow.training import restore
from t2t_videoflow.training import run_dir
from t2t_videoflow.training import trainer as trainer_lib
from t2t_videoflow.training import weight_ema
from t2t_videoflow.errors import HParamsError

from test_trainer import PROBLEM, make_trainer  # noqa: F401  (data_dir fixture below)


@pytest.fixture
def data_dir(tiny_data_dir):
    return tiny_data_dir


def values(variables):
    return [v.numpy().copy() for v in variables]


def test_averages_follow_the_documented_update(data_dir, tmp_path):
    """w̄_n = d_n w̄_{n-1} + (1 - d_n) w_n, d_n = min(d, (1 + n) / (10 + n)), w̄_0 = the
    weights after data-dependent init."""
    decay = 0.5   # below the warm-up's (1 + n) / (10 + n) from n = 8 on: both branches
    trainer = make_trainer(data_dir, tmp_path, train_steps=10,
                           overrides=f"weight_ema_decay={decay}")
    trainer.restore_or_initialize()
    expected = values(trainer.variables)
    for got, want in zip(trainer.ema.averages, expected):
        np.testing.assert_array_equal(got.numpy(), want)
    for n in range(1, 11):
        trainer.train(train_steps=n)
        d = min(decay, (1.0 + n) / (10.0 + n))
        expected = [d * a + (1 - d) * w for a, w in zip(expected, values(trainer.variables))]
    moved = 0
    for got, want, weight in zip(trainer.ema.averages, expected, trainer.variables):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7)
        moved += not np.allclose(got.numpy(), weight.numpy())
    assert moved > len(expected) // 2   # the averages are not simply the weights


def test_resume_restores_the_averages_exactly(data_dir, tmp_path):
    overrides = "weight_ema_decay=0.9"
    straight = make_trainer(data_dir, tmp_path / "straight", train_steps=4,
                            overrides=overrides)
    straight.restore_or_initialize()
    straight.train()
    first = make_trainer(data_dir, tmp_path / "resumed", train_steps=2, overrides=overrides)
    first.restore_or_initialize()
    first.train()
    del first
    second = make_trainer(data_dir, tmp_path / "resumed", train_steps=4, overrides=overrides)
    assert second.restore_or_initialize() == 2
    second.train()
    for a, b in zip(straight.ema.averages, second.ema.averages):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert weight_ema.has_averages(second.manager.latest_checkpoint)


def test_evaluation_scores_the_averages_and_keeps_the_weights(data_dir, tmp_path):
    trainer = make_trainer(data_dir, tmp_path, train_steps=3, overrides="weight_ema_decay=0.9")
    trainer.restore_or_initialize()
    trainer.train()
    weights = values(trainer.variables)
    with_averages = trainer.evaluate()["bpp"]
    for got, want in zip(trainer.variables, weights):
        np.testing.assert_array_equal(got.numpy(), want)
    ema, trainer.ema = trainer.ema, None
    with_weights = trainer.evaluate()["bpp"]
    for variable, average in zip(trainer.variables, ema.averages):
        variable.assign(average)
    assert trainer.evaluate()["bpp"] == pytest.approx(with_averages, rel=1e-6)
    assert with_weights != pytest.approx(with_averages, rel=1e-6)


def test_inference_reads_the_averages_unless_told_not_to(data_dir, tmp_path):
    trainer = make_trainer(data_dir, tmp_path / "ema", train_steps=2,
                           overrides="weight_ema_decay=0.9")
    trainer.restore_or_initialize()
    trainer.train()
    model, _, info, _ = restore.restore_model(str(tmp_path / "ema"))
    assert info["weights"] == "ema"
    for got, want in zip(model.trainable_variables, trainer.ema.averages):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    model, _, info, _ = restore.restore_model(str(tmp_path / "ema"), use_ema=False)
    assert info["weights"] == "trained"
    for got, want in zip(model.trainable_variables, trainer.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    run = restore.restore_for_inference(str(tmp_path / "ema"))
    assert run.weights == "ema"
    # --schedule=evaluate / continuous_eval: a fresh trainer reads weights and averages.
    evaluator = make_trainer(data_dir, tmp_path / "ema", train_steps=2,
                             overrides="weight_ema_decay=0.9")
    assert evaluator.restore_for_eval() == 2
    for got, want in zip(evaluator.ema.averages + evaluator.variables,
                         trainer.ema.averages + trainer.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())

    plain = make_trainer(data_dir, tmp_path / "plain", train_steps=1)
    plain.restore_or_initialize()
    plain.train()
    assert plain.ema is None
    assert not weight_ema.has_averages(plain.manager.latest_checkpoint)
    assert restore.restore_for_inference(str(tmp_path / "plain")).weights == "trained"


def test_averages_that_do_not_fit_the_model_are_an_error(data_dir, tmp_path):
    trainer = make_trainer(data_dir, tmp_path, train_steps=1, overrides="weight_ema_decay=0.9")
    trainer.restore_or_initialize()
    trainer.train()
    model, *_ = restore.restore_model(str(tmp_path), use_ema=False)
    path = run_dir.latest_checkpoint(str(tmp_path))
    one_more = tf.Variable(tf.zeros([3]))
    for variables in (list(model.trainable_variables) + [one_more],          # no such entry
                      [model.trainable_variables[1]] + list(model.trainable_variables)):
        with pytest.raises(ValueError, match=r"weight averages in .*model\.ckpt-1.* do not "
                                             r"fit the model"):
            weight_ema.read_averages(variables, path)


@pytest.mark.parametrize("text,message", [
    ("weight_ema_decay=1.0", r"'weight_ema_decay'=1\.0 .*must be >= 0(\.0)? and < 1"),
    ("weight_ema_decay=-0.1", r"'weight_ema_decay'=-0\.1 .*must be >= 0"),
])
def test_decay_outside_zero_one_is_rejected(text, message):
    with pytest.raises(HParamsError, match=message):
        registry.create_hparams("videoflow_tiny", text, PROBLEM)


@pytest.mark.parametrize("bad", [1.0, -0.5, True, "0.9", None])
def test_check_decay(bad):
    with pytest.raises(ValueError, match="weight_ema_decay must be a number in \\[0, 1\\)"):
        weight_ema.check_decay(bad)
    assert weight_ema.check_decay(0.999) == 0.999


def test_t2t_and_paper_sets_keep_the_raw_weights():
    for name in ("next_frame_glow_bair_quant", "next_frame_glow_shapes", "videoflow_bpp",
                 "videoflow_qual"):
        assert registry.hparams(name).weight_ema_decay == 0.0, name


def test_decoder_says_which_weights_it_samples_with(data_dir, tmp_path):
    from t2t_videoflow.cli import decoder   # pylint: disable=import-outside-toplevel
    trainer = make_trainer(data_dir, tmp_path / "run", train_steps=1,
                           overrides="weight_ema_decay=0.9")
    trainer.restore_or_initialize()
    trainer.train()
    for flag, word in ((True, "ema"), (False, "trained")):
        logs = []
        paths = decoder.decode(str(tmp_path / "run"), str(tmp_path / word), data_dir=data_dir,
                               num_samples=1, num_target_frames=1, log=logs.append,
                               ema_weights=flag)
        assert paths
        assert f"(step 1, {word} weights)" in logs[0], logs[0]


def test_mirrored_strategy_keeps_the_same_averages(data_dir, tmp_path):
    """The update runs in replica context under tf.distribute (merge_call path)."""
    plain = make_trainer(data_dir, tmp_path / "plain", train_steps=2,
                         overrides="weight_ema_decay=0.5")
    plain.restore_or_initialize()
    plain.train()
    hparams = registry.create_hparams("videoflow_tiny", "weight_ema_decay=0.5", PROBLEM)
    hparams.train_steps = 2
    run_dir.save_run(str(tmp_path / "mirrored"), hparams, PROBLEM, "videoflow_tiny")
    config = trainer_lib.TrainConfig(
        output_dir=str(tmp_path / "mirrored"), data_dir=data_dir, train_steps=2,
        eval_steps=2, save_checkpoints_steps=2, log_every_steps=1, random_seed=3,
        eval_sample_clips=1)
    mirrored = trainer_lib.Trainer(registry.problem(PROBLEM), hparams, config,
                                   strategy=tf.distribute.MirroredStrategy(["/cpu:0"]),
                                   log=lambda _: None)
    mirrored.restore_or_initialize()
    mirrored.train()
    for a, b in zip(plain.ema.averages, mirrored.ema.averages):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert weight_ema.has_averages(mirrored.manager.latest_checkpoint)


def test_eval_tool_scores_the_weights_the_trainer_scores(data_dir, tmp_path):
    """`t2t-videoflow-eval --experiment=bpp` gives the trainer's figure, with the
    averages by default, and records which weights it scored."""
    from t2t_videoflow.cli import evaluate   # pylint: disable=import-outside-toplevel
    trainer = make_trainer(data_dir, tmp_path, train_steps=2, overrides="weight_ema_decay=0.9",
                           eval_steps=-1)
    trainer.restore_or_initialize()
    trainer.train()
    want = trainer.evaluate()["bpp"]
    common = dict(data_dir=data_dir, log=lambda _: None, random_seed=3)  # the trainer's seed
    averaged = evaluate.evaluate(str(tmp_path), "bpp", results_dir=str(tmp_path / "eval_ema"),
                                 **common)
    trained = evaluate.evaluate(str(tmp_path), "bpp", results_dir=str(tmp_path / "eval_raw"),
                                ema_weights=False, **common)
    assert (averaged["weights"], trained["weights"]) == ("ema", "trained")
    assert averaged["bpp"] == pytest.approx(want, rel=1e-5)
    assert trained["bpp"] != pytest.approx(want, rel=1e-5)

"""t2t-videoflow-import: a T2T (TF1) checkpoint becomes a run dir the port's tools use."""

import os

import numpy as np
import pytest
import tensorflow as tf

from t2t_videoflow.training import restore
from t2t_videoflow.training import run_dir
from t2t_videoflow.cli import t2t_import
from t2t_videoflow.t2t import import_checkpoint as t2t_import_lib
from t2t_videoflow.model.videoflow import T2T_BODY_SCOPE
from t2t_videoflow.training.run_dir import RunDirError

from inference_testing import (FRAME_SHAPE, HPARAMS_SET, PROBLEM, make_model, random_clips,
                               run_cli, write_tf1_checkpoint)


@pytest.fixture(scope="module")
def t2t_run(tmp_path_factory):
    """A T2T-style checkpoint of a tiny model: its weights under T2T's names plus a
    global step and Adam slots, as T2T's trainer writes them."""
    model, hparams = make_model(seed=4)
    arrays = {T2T_BODY_SCOPE + k: v.numpy() for k, v in model.t2t_variables().items()}
    slot = T2T_BODY_SCOPE + "codec/revnet_0/revnet_step_0/actnorm/actnorm_center/b/Adam"
    arrays[slot] = np.zeros_like(arrays[slot[:-len("/Adam")]])
    arrays["global_step"] = np.int64(1234)
    path = str(tmp_path_factory.mktemp("t2t") / "model.ckpt-1234")
    return model, hparams, write_tf1_checkpoint(path, arrays)


def test_import_writes_a_run_the_port_restores_with_t2t_numbers(t2t_run, tmp_path):
    model, _, source = t2t_run
    out = str(tmp_path / "run")
    path = t2t_import_lib.import_t2t_checkpoint(
        os.path.dirname(source), PROBLEM, HPARAMS_SET, out, import_global_step=True,
        log=lambda m: None)
    assert run_dir.checkpoint_step(path) == 1234
    restored, hparams, info, _ = restore.restore_model(out)
    assert info["problem"] == PROBLEM and info["hparams_set"] == HPARAMS_SET
    for name, var in model.t2t_variables().items():
        np.testing.assert_array_equal(restored.t2t_variables()[name].numpy(), var.numpy(),
                                      err_msg=name)
    clips = random_clips((2, 3, *FRAME_SHAPE), seed=5)
    noise = tf.fill(clips.shape, 1.0 / 512.0)
    np.testing.assert_allclose(restored.bits_per_pixel(clips, 1, noise=noise),
                               model.bits_per_pixel(clips, 1, noise=noise), rtol=1e-6)
    # Every actnorm is marked initialised: fine-tuning's DDI keeps the imported weights.
    flags = [v for v in restored.variables if v.dtype == tf.bool]
    assert flags and all(bool(v.numpy()) for v in flags)
    before = {k: v.numpy() for k, v in restored.t2t_variables().items()}
    restored.data_init(random_clips((2, 3, *FRAME_SHAPE), seed=6))
    for name, var in restored.t2t_variables().items():
        np.testing.assert_array_equal(var.numpy(), before[name], err_msg=name)


def test_import_step_defaults_to_zero_and_never_overwrites_a_run(t2t_run, tmp_path):
    _, _, source = t2t_run
    out = str(tmp_path / "run")
    path = t2t_import_lib.import_t2t_checkpoint(source, PROBLEM, HPARAMS_SET, out,
                                            log=lambda m: None)
    assert run_dir.checkpoint_step(path) == 0
    with pytest.raises(RunDirError, match="already holds a run"):
        t2t_import_lib.import_t2t_checkpoint(source, PROBLEM, HPARAMS_SET, out,
                                         log=lambda m: None)


def test_a_checkpoint_of_another_model_writes_nothing(t2t_run, tmp_path):
    """Weights of other shapes (another coupling width) are refused, naming the
    variable, before anything is written."""
    _, _, source = t2t_run
    out = str(tmp_path / "run")
    with pytest.raises(ValueError, match="Shape mismatch for " + T2T_BODY_SCOPE):
        t2t_import_lib.import_t2t_checkpoint(source, PROBLEM, HPARAMS_SET, out,
                                         overrides="coupling_width=24", log=lambda m: None)
    assert not tf.io.gfile.exists(out) or not tf.io.gfile.listdir(out)


def test_cli_errors_are_one_line(t2t_run, tmp_path, capsys):
    _, _, source = t2t_run
    assert run_cli(t2t_import, [f"--output_dir={tmp_path / 'a'}", f"--problem={PROBLEM}",
                                f"--hparams_set={HPARAMS_SET}"]) == 1
    assert run_cli(t2t_import, [f"--t2t_checkpoint={tmp_path / 'missing.ckpt'}",
                                f"--output_dir={tmp_path / 'b'}", f"--problem={PROBLEM}",
                                f"--hparams_set={HPARAMS_SET}"]) == 1
    assert run_cli(t2t_import, [f"--t2t_checkpoint={source}", f"--output_dir={tmp_path / 'c'}",
                                f"--problem={PROBLEM}", "--hparams_set=no_such_set"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "t2t-videoflow-import: error: --t2t_checkpoint is required."
    assert lines[1].startswith("t2t-videoflow-import: error: T2T checkpoint ")
    assert "not found" in lines[1]
    assert lines[2].startswith("t2t-videoflow-import: error: ") and "no_such_set" in lines[2]
    assert len(lines) == 3
    assert run_cli(t2t_import, [f"--t2t_checkpoint={source}", f"--output_dir={tmp_path / 'd'}",
                                f"--problem={PROBLEM}", f"--hparams_set={HPARAMS_SET}"]) == 0
    assert "Imported" in capsys.readouterr().out


def test_the_trainer_fine_tunes_an_imported_run(t2t_run, tiny_data_dir, tmp_path):
    """The trainer takes the import's model-only checkpoint: imported weights, fresh
    Adam moments from the imported step, no data-dependent init; then it checkpoints
    as usual (with optimizer state) and resumes from its own checkpoints."""
    from t2t_videoflow.config import registry
    from t2t_videoflow.training import trainer as trainer_lib
    model, _, source = t2t_run
    out = str(tmp_path / "run")
    t2t_import_lib.import_t2t_checkpoint(source, PROBLEM, HPARAMS_SET, out,
                                         import_global_step=True, log=lambda m: None)
    hparams = registry.create_hparams(HPARAMS_SET, "", PROBLEM)
    hparams.train_steps = 1236
    config = trainer_lib.TrainConfig(output_dir=out, data_dir=tiny_data_dir,
                                     train_steps=1236, eval_steps=1,
                                     save_checkpoints_steps=1, log_every_steps=1)
    logs = []
    trainer = trainer_lib.Trainer(registry.problem(PROBLEM), hparams, config,
                                  log=logs.append)

    def no_ddi(*args, **kwargs):
        raise AssertionError("data-dependent init ran over the imported weights")
    trainer.model.data_init = no_ddi
    assert trainer.restore_or_initialize() == 1234
    assert any("Fine-tuning the model-only checkpoint" in line for line in logs)
    for name, var in model.t2t_variables().items():
        np.testing.assert_array_equal(trainer.model.t2t_variables()[name].numpy(),
                                      var.numpy(), err_msg=name)
    trainer.train()
    assert trainer.step == 1236
    latest = run_dir.latest_checkpoint(out)
    assert run_dir.checkpoint_step(latest) == 1236
    assert any(n.startswith("optimizer/") for n, _ in tf.train.list_variables(latest))

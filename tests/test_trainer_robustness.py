"""The trainer's failures end in one line that names the file and what to do: corrupt
shards and PNGs, an output dir that is a file, checkpoint writes that fail, a poisoned
update; chief-only data generation; every file written through tf.io.gfile (ram://)."""

import os
import shutil
import struct
import types
import uuid

import numpy as np
import pytest
import tensorflow as tf

from t2t_videoflow.cli import tool as cli
from t2t_videoflow.config import registry
from t2t_videoflow.training import run_dir
from t2t_videoflow.cli import trainer
from t2t_videoflow.training import trainer as trainer_lib
from t2t_videoflow.data import pipeline, records

PROBLEM = "stochastic_shapes_tiny"
SHARD = "stochastic_shapes_tiny-train-00000-of-00002"


def run_trainer(argv, capsys):
    cli.FLAGS.unparse_flags()
    try:
        cli.FLAGS(["t2t-videoflow-trainer", f"--problem={PROBLEM}",
                   "--hparams_set=videoflow_tiny", "--schedule=train", "--train_steps=1",
                   *argv])
        code = trainer.main(["t2t-videoflow-trainer"])
    finally:
        cli.FLAGS.unparse_flags()
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def record_spans(data):
    """[(payload start, payload length)] of the records of a TFRecord file's bytes."""
    spans, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack("<Q", data[offset:offset + 8])
        spans.append((offset + 12, length))
        offset += 12 + length + 4
    return spans


@pytest.fixture
def damaged_data(tiny_data_dir, tmp_path):
    """A private copy of the tiny data (so the session's shared copy stays good)."""
    path = tmp_path / "data"
    shutil.copytree(tiny_data_dir, path)
    return path


def test_corrupt_record_names_the_shard(damaged_data, tmp_path, capsys):
    shard = damaged_data / SHARD
    data = bytearray(shard.read_bytes())
    start, length = record_spans(data)[2]
    data[start + length // 2] ^= 0xFF          # payload no longer matches its CRC
    shard.write_bytes(bytes(data))
    code, err, _ = run_trainer([f"--data_dir={damaged_data}",
                                f"--output_dir={tmp_path / 'run'}"], capsys)
    assert code == 1
    assert len(err) == 1 and err[0].startswith("t2t-videoflow-trainer: error: ")
    assert f"{shard}: corrupt or truncated record after 2 good records" in err[0]
    assert "rerun t2t-videoflow-datagen" in err[0]
    assert "Traceback" not in err[0]


def test_corrupt_png_in_a_valid_record_names_file_and_record(damaged_data, tmp_path,
                                                             capsys):
    shard = str(damaged_data / SHARD)
    rewritten = []
    for i, record in enumerate(tf.data.TFRecordDataset(shard).as_numpy_iterator()):
        if i % 5 == 1:     # frame 1 of every video (in every training window)
            example = tf.train.Example.FromString(record)
            png = bytearray(example.features.feature["image/encoded"].bytes_list.value[0])
            png[len(png) // 2] ^= 0xFF         # the IDAT chunk's CRC fails
            example.features.feature["image/encoded"].bytes_list.value[0] = bytes(png)
            record = example.SerializeToString()
        rewritten.append(record)
    with tf.io.TFRecordWriter(shard) as writer:   # a valid file: every CRC matches
        for record in rewritten:
            writer.write(record)
    code, err, _ = run_trainer([f"--data_dir={damaged_data}",
                                f"--output_dir={tmp_path / 'run'}"], capsys)
    assert code == 1 and len(err) == 1
    assert f"{shard}: record 1 holds a corrupt PNG" in err[0]
    assert "rerun t2t-videoflow-datagen" in err[0]


def test_datagen_check_passes_good_data_and_names_every_bad_shard(damaged_data):
    from t2t_videoflow.data import generate as data_generate
    lines = []
    report = data_generate.check_data("stochastic_shapes_tiny", str(damaged_data),
                                      log=lines.append)
    assert [len(report[s]) for s in ("train", "dev")] == [2, 1]
    assert all(error is None for rows in report.values() for _, error in rows)
    assert lines[-1].endswith("reads and decodes")
    # Damage one train shard's payload and remove the dev shard.
    shard = damaged_data / SHARD
    data = bytearray(shard.read_bytes())
    start, length = record_spans(data)[3]
    data[start + length // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    dev = damaged_data / "stochastic_shapes_tiny-dev-00000-of-00001"
    dev.unlink()
    lines.clear()
    with pytest.raises(records.DataError) as caught:
        data_generate.check_data("stochastic_shapes_tiny", str(damaged_data), log=lines.append)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("2 bad shard(s) in ")
    assert f"{shard}: corrupt or truncated record after 3 good records" in message
    assert f"{dev}: missing; delete that shard and rerun" in message
    assert [l.rsplit(": ", 1)[1] for l in lines] == ["BAD", "ok", "BAD"]
    assert {p.name for p in damaged_data.iterdir()} == {SHARD, SHARD.replace(
        "00000-of", "00001-of")}     # nothing written


def test_datagen_check_cli_is_one_line(damaged_data, capsys):
    from t2t_videoflow.cli import datagen
    (damaged_data / SHARD).write_bytes(b"truncated")
    cli.FLAGS.unparse_flags()
    try:
        cli.FLAGS(["t2t-videoflow-datagen", "--problem=stochastic_shapes_tiny",
                   f"--data_dir={damaged_data}", "--check"])
        code = datagen.main(["t2t-videoflow-datagen"])
    finally:
        cli.FLAGS.unparse_flags()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("t2t-videoflow-datagen: error: 1 bad shard(s) in ")
    assert str(damaged_data / SHARD) in err[0]


def test_find_bad_record_is_none_for_good_data(tiny_data_dir):
    files = sorted(str(p) for p in tf.io.gfile.glob(os.path.join(tiny_data_dir, "*")))
    assert pipeline.find_bad_record(files, (16, 16, 3)) is None


def test_output_dir_that_is_a_file(tiny_data_dir, tmp_path, capsys):
    path = tmp_path / "taken"
    path.write_text("not a directory")
    code, err, _ = run_trainer([f"--data_dir={tiny_data_dir}", f"--output_dir={path}"],
                               capsys)
    assert code == 1
    assert err == [f"t2t-videoflow-trainer: error: --output_dir '{path}' is a file, not "
                   "a directory; pass a new or existing directory."]
    assert path.read_text() == "not a directory"


def make_trainer(data_dir, output_dir, train_steps=2):
    hparams = registry.create_hparams("videoflow_tiny", "", PROBLEM)
    hparams.train_steps = train_steps
    run_dir.save_run(str(output_dir), hparams, PROBLEM, "videoflow_tiny")
    config = trainer_lib.TrainConfig(output_dir=str(output_dir), data_dir=data_dir,
                                     train_steps=train_steps, eval_steps=1,
                                     save_checkpoints_steps=2, log_every_steps=1,
                                     eval_sample_clips=0)
    return trainer_lib.Trainer(registry.problem(PROBLEM), hparams, config,
                               log=lambda _: None)


@pytest.mark.parametrize("error", [
    tf.errors.PermissionDeniedError(None, None, "model.ckpt-2_temp; Permission denied"),
    tf.errors.ResourceExhaustedError(None, None, "No space left on device"),
])
def test_checkpoint_write_failure_is_one_line_naming_the_file(tiny_data_dir, tmp_path,
                                                              error):
    t = make_trainer(tiny_data_dir, tmp_path)
    t.restore_or_initialize()

    def failing_save(*args, **kwargs):
        raise error
    t.manager.save = failing_save
    with pytest.raises(trainer_lib.TrainingError) as caught:
        t.train()
    message = str(caught.value)
    assert "\n" not in message
    assert f"Cannot write {tmp_path / 'model.ckpt-2'} ({type(error).__name__}: " in message
    assert "Free disk space or make --output_dir writable" in message


def test_full_disk_keeps_the_last_checkpoint_and_says_so(tiny_data_dir, tmp_path):
    t = make_trainer(tiny_data_dir, tmp_path, train_steps=4)
    t.restore_or_initialize()
    real_save = t.manager.save
    good = {}

    def save_until_step_2(*args, **kwargs):
        if t.step > 2:     # a write that runs out of space after its temporary file
            tf.io.gfile.GFile(str(tmp_path / "model.ckpt-4_temp"), "w").write("partial")
            raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")
        path = real_save(*args, **kwargs)
        good["values"] = [v.numpy() for v in t.model.trainable_variables]
        return path
    t.manager.save = save_until_step_2
    with pytest.raises(trainer_lib.TrainingError) as caught:
        t.train()
    latest = str(tmp_path / "model.ckpt-2")
    message = str(caught.value)
    assert "\n" not in message
    assert f"The last checkpoint, {latest}, is intact" in message
    assert message.endswith(f"run the same command again to resume from {latest}.")
    assert tf.train.latest_checkpoint(str(tmp_path)) == latest
    # The kept checkpoint holds the step-2 weights (the model has moved on since).
    tf.train.Checkpoint(model=t.model).read(latest).expect_partial()
    for v, value in zip(t.model.trainable_variables, good["values"], strict=True):
        np.testing.assert_array_equal(v.numpy(), value, err_msg=v.name)


def test_nan_guard_refuses_to_save_a_poisoned_state(tiny_data_dir, tmp_path):
    t = make_trainer(tiny_data_dir, tmp_path)
    t.restore_or_initialize()
    t.train()                                   # writes model.ckpt-2
    good = tf.train.load_checkpoint(str(tmp_path / "model.ckpt-2"))
    before = {name: good.get_tensor(name) for name, _ in
              tf.train.list_variables(str(tmp_path / "model.ckpt-2"))
              if name.startswith("model/")}
    # An update that overflowed: finite loss and gradients, non-finite weights.
    variable = t.model.trainable_variables[0]
    variable.assign(tf.fill(variable.shape, np.inf))
    with pytest.raises(trainer_lib.TrainingError,
                       match=r"Non-finite weights after step 2 .* last good checkpoint is "
                             r".*model\.ckpt-2"):
        t.save()
    after = tf.train.load_checkpoint(str(tmp_path / "model.ckpt-2"))
    for name, value in before.items():          # the good checkpoint was not overwritten
        assert np.array_equal(after.get_tensor(name), value, equal_nan=True), name


def _worker(task_id):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": ["localhost:1", "localhost:2"]}),
        task_type="worker", task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_generate_data_runs_on_the_chief_only(tmp_path, monkeypatch):
    problem = registry.problem(PROBLEM)
    calls = []
    assert trainer.generate_data_on_chief(_worker(0), problem, str(tmp_path),
                                          lambda: calls.append("chief")) is None
    assert calls == ["chief"]
    # A non-chief never generates; it waits until every shard exists.
    paths = [p for s in problem.splits for p in problem.shard_paths(str(tmp_path), s)]
    sleeps = []

    def fake_sleep(seconds):        # the chief finishes one shard per poll
        sleeps.append(seconds)
        open(paths[len(sleeps) - 1], "wb").close()
    monkeypatch.setattr(trainer.time, "sleep", fake_sleep)
    trainer.generate_data_on_chief(_worker(1), problem, str(tmp_path),
                                   lambda: calls.append("worker"), poll_secs=0.5)
    assert calls == ["chief"] and len(sleeps) == len(paths)
    for path in paths:
        os.remove(path)
    monkeypatch.setattr(trainer.time, "sleep", lambda s: None)
    with pytest.raises(records.DataError, match="Waited 2 s for the chief"):
        trainer.generate_data_on_chief(_worker(1), problem, str(tmp_path), None,
                                       poll_secs=1.0, timeout_secs=2)


def test_generate_data_gets_raw_data_dir(tmp_path, capsys, monkeypatch):
    seen = {}

    def fake_generate(problem_name, data_dir, **kwargs):
        seen.update(kwargs, problem=problem_name, data_dir=data_dir)
        raise records.DataError("stop here")
    monkeypatch.setattr(trainer.data_generate, "generate_data", fake_generate)
    cli.FLAGS.unparse_flags()
    try:
        cli.FLAGS(["prog", "--problem=bair_action_free", "--hparams_set=videoflow_bpp",
                   f"--data_dir={tmp_path / 'data'}", f"--output_dir={tmp_path / 'run'}",
                   "--generate_data", f"--raw_data_dir={tmp_path / 'bair'}",
                   f"--tfds_data_dir={tmp_path / 'tfds'}"])
        code = trainer.main(["prog"])
    finally:
        cli.FLAGS.unparse_flags()
    assert code == 1 and "stop here" in capsys.readouterr().err
    assert seen["raw_data_dir"] == str(tmp_path / "bair")
    assert seen["tfds_data_dir"] == str(tmp_path / "tfds")
    assert not (tmp_path / "run").exists()       # nothing written before the data


def test_every_file_goes_through_gfile(tiny_data_dir, tmp_path, capsys, monkeypatch):
    """A whole run with --output_dir on TF's in-memory filesystem: all its files are
    there and nothing reached the local disk."""
    monkeypatch.chdir(tmp_path)
    out = f"ram://trainer_{uuid.uuid4().hex[:8]}"
    code, err, _ = run_trainer([f"--data_dir={tiny_data_dir}", f"--output_dir={out}",
                                "--train_steps=2", "--schedule=train_and_evaluate",
                                "--eval_steps=1", "--eval_sample_clips=0"], capsys)
    assert code == 0, err
    names = set(tf.io.gfile.listdir(out))
    assert {"hparams.json", "run.json", "train_log.jsonl", "checkpoint",
            "model.ckpt-2.index"} <= names
    assert tf.io.gfile.glob(f"{out}/train/events.out.tfevents.*")
    assert tf.io.gfile.glob(f"{out}/eval/events.out.tfevents.*")
    assert sorted(trainer_lib.train_log(out)) == [1, 2]
    assert os.listdir(tmp_path) == []


def test_unwritable_output_dir_at_start_is_one_line(tiny_data_dir, tmp_path, capsys,
                                                    monkeypatch):
    """hparams.json is the first write; a read-only or full output dir fails there."""
    def denied(output_dir, *args):
        raise tf.errors.PermissionDeniedError(None, None, f"{output_dir}: Permission denied")
    monkeypatch.setattr(run_dir, "save_run", denied)
    code, err, _ = run_trainer([f"--data_dir={tiny_data_dir}",
                                f"--output_dir={tmp_path / 'run'}"], capsys)
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"t2t-videoflow-trainer: error: Cannot write "
                             f"{tmp_path / 'run' / 'hparams.json'} (PermissionDeniedError: ")
    assert "make --output_dir writable" in err[0]

"""What a run dir survives: two trainers on one --output_dir (a lock), a damaged newest
checkpoint (verified, skipped, never deleted), a torn last line of train_log.jsonl, and
the NaN guard naming as "last good" a checkpoint that really resumes to a finite loss.

Each fault is made for real (real processes, real files cut short) and must end in one
line naming the problem and what to do, the right exit status, and nothing saved lost.
"""

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from t2t_videoflow.cli import tool as cli
from t2t_videoflow.cli import trainer
from t2t_videoflow.config import registry
from t2t_videoflow.errors import RunDirError
from t2t_videoflow.training import restore, run_dir
from t2t_videoflow.training import trainer as trainer_lib

PROBLEM = "stochastic_shapes_tiny"
# Without TF_CPP_MIN_LOG_LEVEL: the tools then quiet TensorFlow's start-up themselves,
# so stderr holds only what the tool says.
ENV = dict({k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
           CUDA_VISIBLE_DEVICES="")


def command(data_dir, output_dir, *extra):
    return [sys.executable, "-m", "t2t_videoflow.cli.trainer", f"--problem={PROBLEM}",
            "--hparams_set=videoflow_tiny", f"--data_dir={data_dir}",
            f"--output_dir={output_dir}", "--log_every_steps=1", "--eval_sample_clips=0",
            "--schedule=train", *extra]


def run_trainer(argv, capsys):
    """The trainer CLI in this process: (exit code, stderr lines, stdout)."""
    cli.FLAGS.unparse_flags()
    try:
        cli.FLAGS(["t2t-videoflow-trainer", f"--problem={PROBLEM}",
                   "--hparams_set=videoflow_tiny", "--schedule=train",
                   "--log_every_steps=1", "--eval_sample_clips=0", *argv])
        code = trainer.main(["t2t-videoflow-trainer"])
    finally:
        cli.FLAGS.unparse_flags()
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def snapshot(directory):
    """{name: bytes} of the checkpoint files (what must not be lost)."""
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))
            if name.startswith("model.ckpt-")}


def losses(output_dir):
    return {step: r["bpp"] for step, r in trainer_lib.train_log(str(output_dir)).items()
            if "bpp" in r}


# -- 1. two trainers on one output dir ----------------------------------------------------

def test_lock_names_its_holder_and_is_released_when_it_closes(tmp_path):
    lock = run_dir.OutputDirLock(str(tmp_path / "run")).acquire()
    try:
        with pytest.raises(RunDirError) as caught:
            run_dir.OutputDirLock(str(tmp_path / "run")).acquire()
        assert str(caught.value).startswith(
            f"--output_dir '{tmp_path / 'run'}' is in use by pid {os.getpid()} on "
            f"{socket.gethostname()} (since ")
        assert str(caught.value).endswith("; wait for it or use another --output_dir.")
    finally:
        lock.release()
    run_dir.OutputDirLock(str(tmp_path / "run")).acquire().release()   # free again
    assert run_dir.OutputDirLock("ram://somewhere").acquire() is None  # not local


@pytest.mark.slow
def test_second_trainer_is_refused_and_a_killed_one_does_not_block(tiny_data_dir,
                                                                   tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(command(tiny_data_dir, out, "--train_steps=400",
                                     "--save_checkpoints_steps=2"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=ENV)
    try:
        for line in first.stdout:
            if line.startswith("step "):
                break
        assert first.poll() is None, "the first trainer ended early"
        try:
            second = subprocess.run(command(tiny_data_dir, out, "--train_steps=400",
                                            "--save_checkpoints_steps=2",
                                            "--random_seed=7"),
                                    capture_output=True, text=True, timeout=90, env=ENV)
        except subprocess.TimeoutExpired:
            pytest.fail("the second trainer ran on the first one's --output_dir")
        assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
        err = second.stderr.strip().splitlines()
        assert len(err) == 1, second.stderr
        assert err[0].startswith(
            f"t2t-videoflow-trainer: error: --output_dir '{out}' is in use by pid "
            f"{first.pid} on {socket.gethostname()} (since "), err[0]
        assert err[0].endswith("; wait for it or use another --output_dir."), err[0]
        assert "Triggering" not in second.stdout and "step " not in second.stdout
        # The first goes on; kill it hard once it has saved a checkpoint or two.
        for line in first.stdout:
            if line.startswith("step 5/400"):
                break
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        first.kill()
        first.communicate()
    saved = run_dir.checkpoints_on_disk(str(out))
    assert saved, "the first trainer saved nothing"
    step, prefix = saved[-1]
    assert os.path.exists(out / ".lock")              # left behind by the killed process
    # A third run resumes: the dead holder's lock does not block it.
    third = subprocess.run(command(tiny_data_dir, out, f"--train_steps={step + 1}",
                                   "--save_checkpoints_steps=2"),
                           capture_output=True, text=True, timeout=300, env=ENV)
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-2000:]
    assert f"Restored {prefix} (step {step})" in third.stdout
    logged = [json.loads(line)["step"] for line in (out / "train_log.jsonl").open()
              if "bpp" in json.loads(line)]
    # One process wrote each step up to the checkpoint (no second trainer's copies);
    # the step after it, which the killed one may have logged too, the resume redid.
    assert all(logged.count(k) == 1 for k in range(1, step + 1)), logged
    assert logged[-1] == step + 1


# -- 2. a damaged newest checkpoint ------------------------------------------------------

@pytest.fixture(scope="module")
def two_checkpoint_run(tiny_data_dir, tmp_path_factory):
    """A tiny run with model.ckpt-1 and model.ckpt-2 (and 3 logged losses: a straight
    run to step 3), written once; tests damage copies of it."""
    out = tmp_path_factory.mktemp("straight") / "run"
    hparams = registry.create_hparams("videoflow_tiny", "", PROBLEM)
    hparams.train_steps = 3
    run_dir.save_run(str(out), hparams, PROBLEM, "videoflow_tiny")
    config = trainer_lib.TrainConfig(output_dir=str(out), data_dir=tiny_data_dir,
                                     train_steps=3, eval_steps=1, save_checkpoints_steps=1,
                                     log_every_steps=1, eval_sample_clips=0)
    t = trainer_lib.Trainer(registry.problem(PROBLEM), hparams, config, log=lambda _: None)
    t.restore_or_initialize()
    t.train(train_steps=2)
    straight = losses(out)
    t.train(train_steps=3)                          # the loss of step 3, for comparison
    straight = losses(out)
    for name in os.listdir(out):                    # keep ckpt-1 and ckpt-2 only
        if name.startswith("model.ckpt-3"):
            os.remove(out / name)
    os.remove(out / "checkpoint")
    lines = (out / "train_log.jsonl").read_text().splitlines()
    kept = [l for l in lines if json.loads(l)["step"] <= 2]
    (out / "train_log.jsonl").write_text("\n".join(kept) + "\n")
    hparams.train_steps = 2
    run_dir.save_run(str(out), hparams, PROBLEM, "videoflow_tiny")
    return out, straight


@pytest.fixture
def run_copy(two_checkpoint_run, tmp_path):
    source, straight = two_checkpoint_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    return out, straight


def damage(out, how, step=2):
    """Damages checkpoint `step` of `out` for real; returns the reason the skip names."""
    data = out / f"model.ckpt-{step}.data-00000-of-00001"
    index = out / f"model.ckpt-{step}.index"
    if how == "truncate_data":
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
        return f"{out}/model.ckpt-{step}.data-* cannot be read ("
    if how == "empty_index":
        index.write_bytes(b"")
        return f"{index} is empty"
    if how == "delete_index":
        index.unlink()
        return f"{index} is missing"
    if how == "delete_data":
        data.unlink()
        return f"{out}/model.ckpt-{step}.data-* is missing"
    raise ValueError(how)


@pytest.mark.parametrize("how", ["truncate_data", "empty_index", "delete_index",
                                 "delete_data"])
def test_resume_skips_a_damaged_newest_checkpoint(run_copy, tiny_data_dir, capsys, how):
    out, straight = run_copy
    reason = damage(out, how)
    before = snapshot(out)
    code, err, stdout = run_trainer([f"--data_dir={tiny_data_dir}", f"--output_dir={out}",
                                     "--train_steps=3", "--save_checkpoints_steps=1000"],
                                    capsys)
    assert code == 0, err
    skips = [l for l in stdout.splitlines() if l.startswith("Skipping checkpoint")]
    assert len(skips) == 1 and skips[0].startswith(
        f"Skipping checkpoint {out / 'model.ckpt-2'}: {reason}"), stdout
    assert "the files are left as they are" in skips[0]
    assert f"Restored {out / 'model.ckpt-1'} (step 1)" in stdout
    assert "Triggering data-dependent init" not in stdout
    # It continued from ckpt-1 exactly: the same losses as the straight run.
    resumed = losses(out)
    assert resumed[2] == straight[2] and resumed[3] == straight[3]
    # Nothing saved was lost: ckpt-1 is as it was, the damaged files are still there
    # (the run saved only ckpt-3).
    after = snapshot(out)
    assert {k: v for k, v in after.items() if not k.startswith("model.ckpt-3")} == before


def test_restore_or_initialize_never_deletes_the_damaged_files(run_copy, tiny_data_dir):
    out, _ = run_copy
    damage(out, "truncate_data")
    before = snapshot(out)
    hparams = registry.create_hparams("videoflow_tiny", "", PROBLEM)
    config = trainer_lib.TrainConfig(output_dir=str(out), data_dir=tiny_data_dir,
                                     train_steps=2)
    logs = []
    t = trainer_lib.Trainer(registry.problem(PROBLEM), hparams, config, log=logs.append)
    assert t.restore_or_initialize() == 1
    assert snapshot(out) == before
    assert sum(l.startswith("Skipping checkpoint") for l in logs) == 1


def test_every_checkpoint_damaged_is_one_line_and_deletes_nothing(run_copy, tiny_data_dir,
                                                                  capsys):
    out, _ = run_copy
    first = damage(out, "empty_index", step=2)
    second = damage(out, "truncate_data", step=1)
    before = snapshot(out)
    code, err, stdout = run_trainer([f"--data_dir={tiny_data_dir}", f"--output_dir={out}",
                                     "--train_steps=3"], capsys)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"t2t-videoflow-trainer: error: No usable checkpoint in "
                             f"'{out}' (model.ckpt-2: {first}; model.ckpt-1: {second}")
    assert "Nothing was deleted" in err[0]
    assert "Triggering data-dependent init" not in stdout      # never silently anew
    assert snapshot(out) == before


def test_inference_uses_the_newest_valid_checkpoint(run_copy):
    out, _ = run_copy
    reason = damage(out, "truncate_data")
    logs = []
    _, _, _, path = restore.restore_model(str(out), log=logs.append)
    assert path == str(out / "model.ckpt-1")
    assert len(logs) == 1 and reason in logs[0]
    # A damaged checkpoint named explicitly is an error naming it.
    with pytest.raises(RunDirError) as caught:
        restore.restore_model(str(out), checkpoint_path=str(out / "model.ckpt-2"))
    message = str(caught.value)
    assert message.startswith(f"Checkpoint '{out / 'model.ckpt-2'}' is damaged: {reason}")
    assert "\n" not in message


# -- 3. a torn last line of train_log.jsonl -------------------------------------------------

def test_torn_last_log_line_is_skipped_and_the_log_stays_valid(run_copy, tiny_data_dir,
                                                                capsys):
    out, straight = run_copy
    log = out / "train_log.jsonl"
    text = log.read_text()
    lines = text.splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:len(lines[-1]) // 2])
    before = snapshot(out)
    code, err, stdout = run_trainer([f"--data_dir={tiny_data_dir}", f"--output_dir={out}",
                                     "--train_steps=3", "--save_checkpoints_steps=1000"],
                                    capsys)
    assert code == 0, err
    notes = [l for l in stdout.splitlines() if "torn last line" in l]
    assert len(notes) == 1 and notes[0].startswith(
        f"Note: skipped the torn last line of {log} (line {len(lines)}, "), stdout
    records = [json.loads(line) for line in log.read_text().splitlines()]  # all parse
    assert [r["step"] for r in records if "bpp" in r] == [1, 2, 3]
    assert losses(out)[3] == straight[3]
    assert {k: v for k, v in snapshot(out).items() if k in before} == before


def test_bad_line_in_the_middle_of_the_log_is_an_error(run_copy, tiny_data_dir, capsys):
    out, _ = run_copy
    log = out / "train_log.jsonl"
    lines = log.read_text().splitlines()
    lines.insert(1, '{"step": 1, "bpp": ')
    log.write_text("\n".join(lines) + "\n")
    text, before = log.read_text(), snapshot(out)
    code, err, _ = run_trainer([f"--data_dir={tiny_data_dir}", f"--output_dir={out}",
                                "--train_steps=3"], capsys)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"t2t-videoflow-trainer: error: {log}, line 2, is not a "
                             "JSON log record ("), err[0]
    assert "fix or delete that line" in err[0]
    assert log.read_text() == text and snapshot(out) == before


# -- 4. the NaN guard's last good checkpoint ------------------------------------------------

def test_diverged_run_names_a_checkpoint_that_resumes_to_a_finite_loss(tiny_data_dir,
                                                                       tmp_path, capsys):
    """videoflow_tiny's schedule (constant*linear_warmup, 1 warmup step) reads
    learning_rate_constant: 1e9 from step 1. ckpt-2 already holds 1e9-scale (finite)
    weights, whose loss is NaN; ckpt-1 (saved before the loss diverged) is good."""
    out = tmp_path / "run"
    code, err, _ = run_trainer([f"--data_dir={tiny_data_dir}", f"--output_dir={out}",
                                "--train_steps=20", "--save_checkpoints_steps=1",
                                "--hparams=learning_rate_constant=1e9"], capsys)
    assert code == 1 and len(err) == 1, err
    message = err[0]
    assert message.startswith("t2t-videoflow-trainer: error: Non-finite training loss at "
                              "step 2: "), message
    good = out / "model.ckpt-1"
    assert (f"the last good checkpoint is {good} (the newest saved before the loss "
            "diverged at step 2; model.ckpt-2 saved since would diverge again). Lower "
            "the learning rate (e.g. --hparams=learning_rate_constant=1e+08 "
            f"--force_hparams; it is 1e+09 now), move model.ckpt-2 out of {out}"
            in message), message
    before = snapshot(out)
    assert set(before) >= {"model.ckpt-1.index", "model.ckpt-2.index"}
    # ckpt-2 really is bad: its (finite, 1e9-scale) weights give a NaN loss at once.
    code, err, _ = run_trainer([f"--data_dir={tiny_data_dir}", f"--output_dir={out}",
                                "--train_steps=3", "--hparams=learning_rate_constant=1e9"],
                               capsys)
    assert code == 1 and "Non-finite training loss at step 2" in err[0], err
    # Doing what the message says (ckpt-2 moved aside, a lower learning rate) resumes
    # from ckpt-1, and its first loss is finite.
    aside = tmp_path / "aside"
    aside.mkdir()
    for path in out.glob("model.ckpt-2.*"):
        shutil.move(str(path), aside / path.name)
    code, err, stdout = run_trainer([f"--data_dir={tiny_data_dir}", f"--output_dir={out}",
                                     "--train_steps=3", "--save_checkpoints_steps=1000",
                                     "--hparams=learning_rate_constant=1e-3",
                                     "--force_hparams"], capsys)
    assert code == 0, err
    assert f"Restored {good} (step 1)" in stdout
    resumed = [json.loads(l) for l in (out / "train_log.jsonl").read_text().splitlines()]
    after_resume = [r["bpp"] for r in resumed if "bpp" in r][-2:]
    assert len(after_resume) == 2 and all(math.isfinite(v) for v in after_resume)
    assert (out / "model.ckpt-1.index").read_bytes() == before["model.ckpt-1.index"]


def test_checkpoint_saves_record_their_loss(run_copy):
    out, straight = run_copy
    records = trainer_lib.train_log(str(out))
    assert records[1]["checkpoint"] == "model.ckpt-1"
    assert records[2]["checkpoint_bpp"] == straight[2]


def test_diverged_since_walks_back_over_exploding_losses():
    losses_ = {k: 2.0 for k in range(10)}
    assert trainer_lib.diverged_since(losses_, 10) == 10
    losses_.update({8: 500.0, 9: 1e6})              # > 100 x the median, then NaN
    assert trainer_lib.diverged_since(losses_, 10) == 8
    assert trainer_lib.diverged_since({0: 2.0, 1: 900.0}, 2) == 2   # too few to judge

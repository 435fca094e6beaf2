"""A trainer start that fails (missing data) leaves no run record in --output_dir, so the
corrected command, with other hparams, is accepted there."""

import os
import shutil
import subprocess
import sys

import pytest

BIN = os.path.dirname(sys.executable)
# Without TF_CPP_MIN_LOG_LEVEL: the tools then quiet TensorFlow's start-up themselves.
ENV = dict({k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
           CUDA_VISIBLE_DEVICES="")
PROBLEM = "stochastic_shapes_tiny"


def trainer(*args):
    return subprocess.run(
        [os.path.join(BIN, "t2t-videoflow-trainer"), f"--problem={PROBLEM}",
         "--hparams_set=videoflow_tiny", *args],
        capture_output=True, text=True, timeout=300, env=ENV)


def run_record(output_dir):
    return sorted(f for f in ("hparams.json", "run.json")
                  if os.path.exists(os.path.join(output_dir, f)))


def test_missing_data_dir_writes_nothing_and_the_fixed_command_trains(
        tmp_path, tiny_data_dir):
    run = str(tmp_path / "run")
    failed = trainer(f"--data_dir={tmp_path / 'missing'}", f"--output_dir={run}")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert failed.stderr.splitlines() == [
        f"t2t-videoflow-trainer: error: Data dir {str(tmp_path / 'missing')!r} does not "
        f"exist; run t2t-videoflow-datagen --problem={PROBLEM} --data_dir=DIR."]
    assert run_record(run) == []

    # The corrected command, with other hparams: nothing was trained, so it is accepted.
    fixed = trainer(f"--data_dir={tiny_data_dir}", f"--output_dir={run}",
                    "--hparams=learning_rate=0.002", "--train_steps=1",
                    "--schedule=train", "--log_every_steps=1", "--eval_sample_clips=0")
    assert fixed.returncode == 0, fixed.stdout[-2000:] + fixed.stderr[-4000:]
    assert "step 1/1" in fixed.stdout
    assert run_record(run) == ["hparams.json", "run.json"]


@pytest.mark.parametrize("schedule", ["train_and_evaluate", "evaluate"])
def test_missing_eval_shards_fail_before_anything_is_written(schedule, tmp_path,
                                                             tiny_data_dir):
    data = tmp_path / "data"
    data.mkdir()
    for name in os.listdir(tiny_data_dir):
        if "-train-" in name:
            shutil.copy(os.path.join(tiny_data_dir, name), data / name)
    run = str(tmp_path / "run")
    failed = trainer(f"--data_dir={data}", f"--output_dir={run}", f"--schedule={schedule}")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    lines = failed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"t2t-videoflow-trainer: error: No 'dev' shards of problem {PROBLEM!r}"), lines
    assert run_record(run) == []

"""t2t-videoflow-trainer end to end: CLI train + eval, resume after SIGKILL, mirrored on
2 logical CPUs against one device, 2 workers on loopback, and one-line flag errors."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from t2t_videoflow.cli import trainer
from t2t_videoflow.training import trainer as trainer_lib

PROBLEM = "stochastic_shapes_tiny"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


@pytest.fixture
def data_dir(tiny_data_dir):
    """The session's shared tiny shards (conftest); read only."""
    return tiny_data_dir


def command(data_dir, output_dir, *extra):
    return [sys.executable, "-m", "t2t_videoflow.cli.trainer", f"--problem={PROBLEM}",
            "--hparams_set=videoflow_tiny", f"--data_dir={data_dir}",
            f"--output_dir={output_dir}", "--log_every_steps=1", "--eval_steps=2",
            "--eval_sample_clips=0", *extra]


def run(cmd, timeout=300, env=None):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                            env=env or ENV)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def losses(output_dir):
    return {step: r["bpp"] for step, r in trainer_lib.train_log(str(output_dir)).items()
            if "bpp" in r}


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_with_its_status(data_dir, tmp_path):
    """Preemption: SIGTERM mid-run saves the current step (no checkpoint was due), says
    so in one line, exits 143, and the same command resumes from that step."""
    out_dir = tmp_path / "run"
    flags = ("--train_steps=400", "--save_checkpoints_steps=1000", "--schedule=train")
    proc = subprocess.Popen(command(data_dir, out_dir, *flags), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        for line in proc.stdout:
            if line.startswith("step 3/400"):
                proc.send_signal(signal.SIGTERM)
                break
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    saved = sorted(p.name for p in out_dir.glob("model.ckpt-*.index"))
    assert len(saved) == 1, saved
    step = int(saved[0][len("model.ckpt-"):-len(".index")])
    assert step >= 3
    last = stderr.strip().splitlines()[-1]
    assert last == (f"t2t-videoflow-trainer: terminated (SIGTERM); checkpoint "
                    f"{out_dir / f'model.ckpt-{step}'} saved. Run the same command to "
                    "resume."), stderr[-2000:]
    out = run(command(data_dir, out_dir, "--train_steps=" + str(step + 1),
                      "--save_checkpoints_steps=1000", "--schedule=train"))
    assert f"(step {step})" in out and "Triggering data-dependent init" not in out


@pytest.mark.slow
def test_cli_trains_evaluates_and_resumes_exactly_after_sigkill(data_dir, tmp_path):
    flags = ("--train_steps=5", "--save_checkpoints_steps=2", "--schedule=train")
    straight = tmp_path / "straight"
    out = run(command(data_dir, straight, *flags))
    assert "Triggering data-dependent init" in out and "step 5/5  bpp" in out

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(data_dir, killed, *flags), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=ENV)
    try:
        for line in proc.stdout:
            if line.startswith("step 3/5"):     # checkpoint 2 is written; 4 is not
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.ckpt-4.index").exists()
    out = run(command(data_dir, killed, *flags))
    assert "Restored" in out and "model.ckpt-2 (step 2)" in out
    assert "Triggering data-dependent init" not in out
    want, got = losses(straight), losses(killed)
    assert sorted(got) == [1, 2, 3, 4, 5]
    for step in range(1, 6):   # same process type, same ops: the same numbers
        assert got[step] == pytest.approx(want[step], rel=1e-6, abs=0), step

    out = run(command(data_dir, killed, "--schedule=evaluate"))
    assert "eval step 5: dev bpp" in out
    assert json.loads((killed / "run.json").read_text())["problem"] == PROBLEM


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device(data_dir, tmp_path):
    flags = ("--train_steps=3", "--schedule=train", "--hparams=batch_size=4")
    one = run(command(data_dir, tmp_path / "one", "--strategy=one_device", *flags))
    two = run(command(data_dir, tmp_path / "two", "--strategy=mirrored",
                      "--num_cpu_devices=2", *flags))
    assert "OneDeviceStrategy with 1 replica(s)" in one
    assert "MirroredStrategy with 2 replica(s)" in two
    want, got = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(got) == [1, 2, 3]
    # Same clips, same noise; only the order of float sums differs (all-reduce).
    for step in (1, 2, 3):
        assert got[step] == pytest.approx(want[step], rel=1e-4), step


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_loopback(data_dir, tmp_path):
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            command(data_dir, tmp_path / "run", "--train_steps=2", "--schedule=train",
                    "--hparams=batch_size=4"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            outputs.append(out)
            assert proc.returncode == 0, out[-2000:] + err[-4000:]
    finally:
        for proc in procs:
            proc.kill()
    assert "MultiWorkerMirroredStrategy with 2 replica(s)" in outputs[0]
    assert (tmp_path / "run" / "model.ckpt-2.index").exists()
    assert not (tmp_path / "run" / "workers").exists() or not any(
        (tmp_path / "run" / "workers").rglob("*.index"))
    assert sorted(losses(tmp_path / "run")) == [1, 2]   # written by the chief only
    # Shard by example: two workers train on the clips (and noise) of one worker's
    # global batches, so the losses match up to the order of float sums.
    run(command(data_dir, tmp_path / "one", "--train_steps=2", "--schedule=train",
                "--hparams=batch_size=4"))
    want, got = losses(tmp_path / "one"), losses(tmp_path / "run")
    for step in (1, 2):
        assert got[step] == pytest.approx(want[step], rel=1e-4), step
    # One worker continues the two workers' checkpoint (which holds no input position).
    out = run(command(data_dir, tmp_path / "run", "--train_steps=3", "--schedule=train",
                      "--hparams=batch_size=4"))
    assert "written by several workers" in out
    assert sorted(losses(tmp_path / "run")) == [1, 2, 3]


def test_without_the_graph_optimizer_the_losses_are_the_same(tmp_path, tiny_data_dir):
    """--nograph_optimizer turns grappler off for the run: same losses up to rounding."""
    run(command(tiny_data_dir, tmp_path / "on", "--train_steps=2", "--schedule=train"))
    out = run(command(tiny_data_dir, tmp_path / "off", "--train_steps=2",
                      "--schedule=train", "--nograph_optimizer"))
    assert "graph optimizer (grappler) off" in out
    want, got = losses(tmp_path / "on"), losses(tmp_path / "off")
    assert sorted(got) == [1, 2]
    for step in (1, 2):
        assert got[step] == pytest.approx(want[step], rel=1e-5), step


# -- flag errors: one line on stderr, exit code 1 (in process) ---------------------------

def run_main_in_process(argv, capsys):
    trainer.FLAGS.unparse_flags()
    trainer.FLAGS(["t2t-videoflow-trainer", *argv])
    try:
        code = trainer.main(["t2t-videoflow-trainer"])
    finally:
        trainer.FLAGS.unparse_flags()
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("argv,message", [
    (["--problem=no_such_problem", "--hparams_set=videoflow_tiny"], "no_such_problem"),
    ([f"--problem={PROBLEM}", "--hparams_set=no_such_set"], "no_such_set"),
    ([f"--problem={PROBLEM}", "--hparams_set=videoflow_tiny", "--hparams=depth"],
     "depth"),
    ([f"--problem={PROBLEM}", "--hparams_set=videoflow_tiny", "--hparams=depth=two"],
     "depth"),
    ([f"--problem={PROBLEM}", "--hparams_set=videoflow_bpp"], "64x64"),
    ([f"--problem={PROBLEM}", "--hparams_set=videoflow_tiny", "--hparams=temperature=-1"],
     "'temperature'=-1.0 (hparams set 'videoflow_tiny') must be >= 0.0"),
    ([f"--problem={PROBLEM}", "--hparams_set=videoflow_tiny",
      "--hparams=depth=1,,coupling=affine"], "empty element between commas"),
    ([f"--problem={PROBLEM}", "--hparams_set=videoflow_tiny", "--hparams=weight_decay=1e-6"],
     "'weight_decay'=1e-06 (hparams set 'videoflow_tiny') is not used by this port"),
])
def test_bad_names_and_overrides_give_one_line_errors(argv, message, tmp_path, capsys):
    code, err = run_main_in_process(
        [*argv, f"--data_dir={tmp_path}/data", f"--output_dir={tmp_path}/out"], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("t2t-videoflow-trainer: error: ")
    assert message in lines[0]
    assert not (tmp_path / "out").exists()      # refused before anything is written


def test_missing_data_dir_is_a_one_line_error(tmp_path, capsys):
    code, err = run_main_in_process(
        [f"--problem={PROBLEM}", "--hparams_set=videoflow_tiny",
         f"--data_dir={tmp_path}/nowhere", f"--output_dir={tmp_path}/out"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "nowhere" in err


def test_output_dir_trained_with_other_hparams_is_an_error(data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    from t2t_videoflow.config import registry
    from t2t_videoflow.training import run_dir
    old = registry.create_hparams("videoflow_tiny", "coupling_width=16", PROBLEM)
    run_dir.save_run(str(out), old, PROBLEM, "videoflow_tiny")
    argv = [f"--problem={PROBLEM}", "--hparams_set=videoflow_tiny", f"--data_dir={data_dir}",
            f"--output_dir={out}", "--schedule=evaluate"]
    code, err = run_main_in_process(argv, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "coupling_width: 16 -> 8" in err and "--force_hparams" in err
    # train_steps alone may change (extending a run): then the error is the missing
    # checkpoint, not the hparams.
    run_dir.save_run(str(out), registry.create_hparams("videoflow_tiny", "", PROBLEM),
                     PROBLEM, "videoflow_tiny")
    code, err = run_main_in_process([*argv, "--train_steps=99"], capsys)
    assert code == 1 and "No checkpoint in" in err


def test_default_eval_frequency_gives_the_demo_an_eval_curve():
    from t2t_videoflow.config import registry
    assert trainer.default_eval_frequency(250000) == 1000      # T2T's default
    assert trainer.default_eval_frequency(8000) == 1000
    assert trainer.default_eval_frequency(2) == 1
    demo_steps = registry.hparams("videoflow_shapes16_demo").train_steps
    every = trainer.default_eval_frequency(demo_steps)
    assert (demo_steps, every) == (3000, 600)                 # evals at 600 ... 3000

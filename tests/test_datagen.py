"""Datagen: idempotent, interruption-safe shard writing; the CLI end to end."""

import os
import resource
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

from t2t_videoflow.data import generate as data_generate
from t2t_videoflow.config import registry
from t2t_videoflow.data.records import DataError
from t2t_videoflow.problems import stochastic_shapes
from t2t_videoflow.problems.stochastic_shapes import StochasticShapes

CLI = os.path.join(os.path.dirname(sys.executable), "t2t-videoflow-datagen")


def _files(d):
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))}


def test_library_generate_and_rerun_keeps_shards(tmp_path):
    lines = []
    out = str(tmp_path / "data")
    summary = data_generate.generate_data("stochastic_shapes_tiny", out, log=lines.append)
    assert [len(summary[s]["written"]) for s in ("train", "dev")] == [2, 1]
    assert any("shard 1/2 written: 22 videos, 110 frames" in l for l in lines)
    first = _files(out)
    mtimes = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in first}
    lines.clear()
    summary = data_generate.generate_data("stochastic_shapes_tiny", out, log=lines.append)
    assert summary["train"]["kept"] and not summary["train"]["written"]
    assert sum("exists, kept" in l for l in lines) == 3
    assert _files(out) == first
    assert {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in first} == mtimes


def test_interrupted_run_leaves_no_partial_shard(tmp_path, monkeypatch):
    clean = str(tmp_path / "clean")
    StochasticShapes(num_videos=33, frame_size=16).generate_data(clean, log=None)
    out = str(tmp_path / "out")
    real_render = stochastic_shapes.render_video
    calls = {"n": 0}

    def failing_render(*args):
        calls["n"] += 1
        if calls["n"] == 8:      # in the middle of train shard 3 (3 videos per shard)
            raise KeyboardInterrupt
        return real_render(*args)

    monkeypatch.setattr(stochastic_shapes, "render_video", failing_render)
    with pytest.raises(KeyboardInterrupt):
        StochasticShapes(num_videos=33, frame_size=16).generate_data(out, log=None)
    assert sorted(os.listdir(out)) == [
        "video_stochastic_shapes10k-train-00000-of-00010",
        "video_stochastic_shapes10k-train-00001-of-00010"]      # complete shards only
    # A killed run (no cleanup) leaves a temporary file; the next run removes it.
    stale = os.path.join(out, "video_stochastic_shapes10k-train-00002-of-00010.incomplete-1")
    open(stale, "wb").write(b"partial")
    monkeypatch.setattr(stochastic_shapes, "render_video", real_render)
    lines = []
    StochasticShapes(num_videos=33, frame_size=16).generate_data(out, log=lines.append)
    assert sum("exists, kept" in l for l in lines) == 2
    assert _files(out) == _files(clean)          # resumed output == uninterrupted output


def _run_cli(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)


def test_cli_end_to_end_with_usr_dir(tmp_path):
    assert os.path.exists(CLI), "run `pip install -e .` to create the console script"
    tag = uuid.uuid4().hex[:8]
    pkg = tmp_path / f"cli_usr_{tag}"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        from t2t_videoflow.config import registry
        from t2t_videoflow.problems.stochastic_shapes import StochasticShapesTiny

        @registry.register_problem("cli_shapes")
        class CliShapes(StochasticShapesTiny):
            file_prefix = "cli_shapes"
            num_videos = 12
            num_shards = {{"train": 2, "dev": 1}}
    """))
    out = str(tmp_path / "data")
    r = _run_cli("--problem=cli_shapes", f"--data_dir={out}", f"--t2t_usr_dir={pkg}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "cli_shapes train shard 1/2 written" in r.stdout
    assert sorted(os.listdir(out)) == ["cli_shapes-dev-00000-of-00001",
                                       "cli_shapes-train-00000-of-00002",
                                       "cli_shapes-train-00001-of-00002"]
    # The written data feeds the pipeline with the tiny set.
    from t2t_videoflow.config.usr_dir import import_usr_dir
    import_usr_dir(str(pkg))
    problem_cls = registry.problem_class("cli_shapes")
    hp = registry.create_hparams("videoflow_tiny", "batch_size=2", problem_name="cli_shapes")
    batch = next(iter(problem_cls().dataset("train", out, hp, deterministic=True)))
    assert batch["video"].shape == (2, 2, 16, 16, 3)


def test_cli_errors_are_one_line(tmp_path):
    r = _run_cli("--problem=stochastic_shape", f"--data_dir={tmp_path / 'd'}")
    assert r.returncode == 1
    err = [l for l in r.stderr.splitlines() if l.startswith("t2t-videoflow-datagen")]
    assert len(err) == 1 and "Did you mean 'stochastic_shapes'?" in err[0]
    assert "Traceback" not in r.stderr
    r = _run_cli("--problem=bair_action_free", f"--data_dir={tmp_path / 'd'}",
                 f"--raw_data_dir={tmp_path / 'no_such_dir'}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"error: --raw_data_dir '{tmp_path / 'no_such_dir'}' does not exist" in r.stderr


def test_library_errors(tmp_path):
    with pytest.raises(DataError, match="--data_dir is required"):
        data_generate.generate_data("stochastic_shapes_tiny", "")
    with pytest.raises(ValueError, match="takes no --seed"):
        data_generate.generate_data("bair_action_free", str(tmp_path), seed=3)
    with pytest.raises(KeyError, match="Unknown problem"):
        data_generate.generate_data("nope", str(tmp_path))


def _file_size_limit(limit):
    def apply():       # in the child: writes past `limit` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_write_that_fails_is_one_line_and_keeps_complete_shards(tmp_path):
    """A real failing write (a file-size limit on the datagen process: a write past it
    fails as on a full disk): one line naming the shard and what to do, exit 1, no
    partial file, the complete shards untouched; the rerun without the limit writes
    the missing shard, and every shard then reads and decodes."""
    out = tmp_path / "data"
    command = [CLI, "--problem=stochastic_shapes_tiny", f"--data_dir={out}"]
    data_generate.generate_data("stochastic_shapes_tiny", str(out), log=lambda _: None)
    before = _files(out)
    missing = "stochastic_shapes_tiny-train-00001-of-00002"
    os.remove(out / missing)
    failed = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            preexec_fn=_file_size_limit(len(before[missing]) - 100))
    assert failed.returncode == 1, failed.stderr[-2000:]
    lines = failed.stderr.strip().splitlines()
    assert lines == [f"t2t-videoflow-datagen: error: Writing {out / missing} failed (File "
                     f"too large); free space in (or write access to) {out} and rerun: "
                     "the 1 complete shard(s) of this split are kept and skipped."], (
                         failed.stderr[-2000:])
    assert _files(out) == {k: v for k, v in before.items() if k != missing}
    data_generate.generate_data("stochastic_shapes_tiny", str(out), log=lambda _: None)
    after = _files(out)
    assert sorted(after) == sorted(before)
    assert {k: v for k, v in after.items() if k != missing} == {
        k: v for k, v in before.items() if k != missing}
    data_generate.check_data("stochastic_shapes_tiny", str(out), log=lambda _: None)

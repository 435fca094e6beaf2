"""matplotlib is the optional `plots` extra: without it every experiment that draws
plots still writes its results and says in one line that the plots were skipped and how
to get them; with it the plots are written."""

import json
import os
import subprocess
import sys

import pytest

from t2t_videoflow.cli import evaluate
from t2t_videoflow.evaluation import context as context_lib
from t2t_videoflow.evaluation import long_rollout, out_of_sequence, temperature_sweep

from inference_testing import eval_run, random_clips, run_cli

BIN = os.path.dirname(sys.executable)
SKIPPED = "plots skipped: matplotlib is not installed (pip install 't2t-videoflow[plots]'"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data_dir):
    return eval_run(str(tmp_path_factory.mktemp("run")), tiny_data_dir)


@pytest.fixture
def no_matplotlib_dir(tmp_path):
    """A PYTHONPATH entry whose `matplotlib` fails to import, as when it is not installed."""
    stub = tmp_path / "no_matplotlib" / "matplotlib"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        "raise ImportError(\"No module named 'matplotlib' (test stub)\")\n")
    return str(stub.parent)


def oos_argv(run, results_dir):
    return [f"--output_dir={run['output_dir']}", "--experiment=out_of_sequence",
            f"--data_dir={run['data_dir']}", "--max_clips=4", "--num_frames=4",
            "--batch_size=4", f"--results_dir={results_dir}"]


def test_out_of_sequence_cli_without_matplotlib_writes_results(run, no_matplotlib_dir,
                                                               tmp_path):
    results_dir = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([no_matplotlib_dir, *filter(None, [
        os.environ.get("PYTHONPATH"), os.path.dirname(__file__)])])
    env["CUDA_VISIBLE_DEVICES"] = ""
    probe = subprocess.run([sys.executable, "-c", "import matplotlib"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert probe.returncode != 0 and "test stub" in probe.stderr     # the stub is seen
    result = subprocess.run([os.path.join(BIN, "t2t-videoflow-eval"),
                             *oos_argv(run, results_dir)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr == ""
    skipped = [line for line in result.stdout.splitlines() if "plots skipped" in line]
    assert skipped == [f"out_of_sequence: {SKIPPED} to get them; --plots=false skips "
                       "them without this note)"]
    assert sorted(os.listdir(results_dir)) == ["out_of_sequence.json"]
    with open(results_dir / "out_of_sequence.json") as f:
        assert json.load(f)["frames"] == [2, 3, 4]


def test_out_of_sequence_cli_with_matplotlib_writes_the_plot(run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    results_dir = tmp_path / "results"
    assert run_cli(evaluate, oos_argv(run, results_dir)) == 0
    assert "plots skipped" not in capsys.readouterr().out
    assert sorted(os.listdir(results_dir)) == ["out_of_sequence.json", "out_of_sequence.png"]
    with open(results_dir / "out_of_sequence.png", "rb") as f:
        assert f.read(8) == PNG


@pytest.mark.parametrize("module, options, plot_files", [
    (out_of_sequence, dict(num_frames=3, batch_size=4), ["out_of_sequence.png"]),
    (long_rollout, dict(num_frames=3, num_samples=1), ["long_rollout.png"]),
    (temperature_sweep, dict(temperatures="0.5", num_samples=1, batch_size=2),
     ["temperature_sweep_psnr.png", "temperature_sweep_ssim.png",
      "temperature_sweep_summary.png"]),
])
@pytest.mark.parametrize("installed", [False, True])
def test_every_plotting_experiment_writes_results_without_matplotlib(
        run, module, options, plot_files, installed, tmp_path, monkeypatch):
    if installed:
        pytest.importorskip("matplotlib")
    else:
        monkeypatch.setitem(sys.modules, "matplotlib", None)   # import fails
        monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    lines = []
    hp = run["hparams"]
    clips = random_clips((2, hp.video_num_input_frames + hp.video_num_target_frames,
                          16, 16, 3), seed=2)
    context = context_lib.RunContext.from_arrays(run["model"], hp, clips, log=lines.append)
    results_dir = str(tmp_path / "results")
    result = module.run(context, plots=True, results_dir=results_dir, **options)
    name = module.NAME
    assert os.path.join(results_dir, f"{name}.json") in result["files"]
    written = {f for f in os.listdir(results_dir) if f.endswith(".png")}
    skipped = [line for line in lines if "plots skipped" in line]
    if installed:
        assert written == set(plot_files) and skipped == []
    else:
        assert written == set() and len(skipped) == 1
        assert skipped[0].startswith(f"{name}: {SKIPPED}")
    with open(os.path.join(results_dir, f"{name}.json")) as f:
        assert json.load(f)["experiment"] == name

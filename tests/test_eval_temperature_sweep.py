"""`t2t-videoflow-eval --experiment=temperature_sweep`: the protocol recomputed by
hand, seeds independent of batching and of the other temperatures, VGG plumbing,
files and tables, and the CLI's one-line errors."""

import json
import os

import numpy as np
import pytest

from t2t_videoflow.model import sampling
from t2t_videoflow.cli import evaluate
from t2t_videoflow.errors import UsageError
from t2t_videoflow.evaluation import metrics, temperature_sweep as sweep_lib

from inference_testing import eval_run, quiet_context, run_cli

EXPERIMENT = "--experiment=temperature_sweep"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data_dir):
    return eval_run(str(tmp_path_factory.mktemp("run")), tiny_data_dir)


def shapes_like_clips(n, seed):
    """Clips of flat shapes on a flat background (not noise): frames the model can come
    close to, so the metrics are not all at their floor."""
    rng = np.random.RandomState(seed)
    clips = np.full((n, 3, 16, 16, 3), 40, np.uint8)
    for i in range(n):
        for t in range(3):
            y, x = rng.randint(0, 10, 2)
            clips[i, t, y:y + 6, x:x + 6] = rng.randint(100, 256, 3)
    return clips


def test_parse_temperatures():
    assert sweep_lib.sweep_temperatures("0.5, 0.1,1") == [0.1, 0.5, 1.0]
    assert sweep_lib.sweep_temperatures("0") == [0.0]
    assert sweep_lib.sweep_temperatures([1, 0.25]) == [0.25, 1.0]
    cases = [("", "empty item"), ("0.1,,0.5", "empty item"), ("0.1,abc", "'abc' is not a"),
             ("-0.5", "finite number >= 0; got '-0.5'"), ("nan", "finite number >= 0"),
             ("inf", "finite number >= 0"), ("0.5,0.50", "0.5 is given twice"),
             ([], "is empty"), ("0/1", "not per-level values; got 0/1")]
    for value, expected in cases:
        with pytest.raises(UsageError, match=expected):
            sweep_lib.sweep_temperatures(value)


def test_sample_seeds_are_fixed_per_clip_and_int32():
    seeds = [sampling.clip_seed(3, i) for i in range(50)]
    assert len(set(seeds)) == 50 and all(0 <= s < 2 ** 31 for s in seeds)
    assert seeds == [sampling.clip_seed(3, i) for i in range(50)]
    assert seeds != [sampling.clip_seed(4, i) for i in range(50)]


def test_the_sweep_is_the_protocol_recomputed_by_hand(run):
    """PSNR/SSIM of N model samples per clip (seed per clip) against the truth, then
    per clip the sample with the best frame-averaged value, then the clip mean."""
    clips = shapes_like_clips(4, seed=1)
    model, n_in = run["model"], run["hparams"].video_num_input_frames
    result = sweep_lib.run(quiet_context(run, clips), temperatures="0.6", num_samples=2,
                           seed=7, batch_size=3, plots=False)
    row = result["per_temperature"][0]
    psnr = np.zeros([2, 4, 2])
    ssim = np.zeros([2, 4, 2])
    for i, clip in enumerate(clips):
        samples = model.sample(np.repeat(clip[None, :n_in], 2, 0), 2, 0.6,
                               sampling.clip_seed(7, i)).numpy()
        mse = ((samples.astype(np.float64) - clip[n_in:]) ** 2).mean(axis=(2, 3, 4))
        psnr[:, i] = 10 * np.log10(255.0 ** 2 / mse)
        ssim[:, i] = metrics.frame_ssim(samples, clip[n_in:]).numpy()
    for name, values in (("psnr", psnr), ("ssim", ssim)):
        best = values[values.mean(axis=2).argmax(axis=0), np.arange(4)].mean(axis=0)
        np.testing.assert_allclose(row[name]["best"], best, rtol=1e-4)
        np.testing.assert_allclose(row[name]["mean"], values.mean(axis=(0, 1)), rtol=1e-4)
        assert row[name]["best_avg"] == pytest.approx(best.mean(), rel=1e-4)
        assert row[name]["best_avg"] >= row[name]["mean_avg"]


def test_samples_do_not_depend_on_batching_or_on_the_other_temperatures(run):
    clips = shapes_like_clips(3, seed=2)
    context = quiet_context(run, clips)
    both = sweep_lib.run(context, temperatures="0.5,1.0", num_samples=2, seed=1,
                         batch_size=1, plots=False)
    alone = sweep_lib.run(context, temperatures="1.0", num_samples=2, seed=1,
                          batch_size=3, plots=False)
    for name in ("psnr", "ssim"):
        assert both["per_temperature"][1][name] == alone["per_temperature"][0][name]
    assert both["per_temperature"][0]["psnr"] != both["per_temperature"][1]["psnr"]
    # The first n samples of a larger N are the samples of an n-sample run.
    model = run["model"]
    three = model.sample(np.repeat(clips[:1, :1], 3, 0), 2, 0.8, 12345).numpy()
    two = model.sample(np.repeat(clips[:1, :1], 2, 0), 2, 0.8, 12345).numpy()
    np.testing.assert_array_equal(two, three[:2])
    assert not np.array_equal(three[0], three[1])


def test_experiment_on_the_tiny_run_writes_json(run, tmp_path):
    results_dir = str(tmp_path / "results")
    messages = []
    result = evaluate.evaluate(run["output_dir"], "temperature_sweep", run["data_dir"],
                               results_dir=results_dir, log=messages.append,
                               temperatures="1.0,0,0.5", num_samples=3, random_seed=0,
                               batch_size=2, max_clips=4, plots=False, vgg_weights=None)
    temps = [0.0, 0.5, 1.0]
    assert result["temperatures"] == temps and result["clips"] == 4
    assert result["metrics"] == ["psnr", "ssim"] and result["vgg"] is None
    assert result["vgg_skipped"] == "no --vgg_weights given"
    rows = result["per_temperature"]
    assert [row["temperature"] for row in rows] == temps
    for row in rows:
        for name in ("psnr", "ssim"):
            for key in ("best", "mean", "std", "worst"):
                assert len(row[name][key]) == result["target_frames"] == 2
            assert row[name]["best_avg"] >= row[name]["mean_avg"]
    # tau = 0: every sample is the mean path, so best = mean = worst and std = 0.
    zero = rows[0]["ssim"]
    np.testing.assert_allclose(zero["best"], zero["mean"], rtol=1e-6)
    np.testing.assert_allclose(zero["worst"], zero["mean"], rtol=1e-6)
    np.testing.assert_allclose(zero["std"], 0.0, atol=1e-6)
    assert rows[2]["ssim"]["std"][0] > 0
    for name in ("psnr", "ssim"):
        scores = [row[name]["best_avg"] for row in rows]
        assert result["best_temperature"][name] == temps[int(np.argmax(scores))]
    # One progress line per temperature.
    assert sum("temperature_sweep: temperature" in m for m in messages) == 3
    assert any("VGG cosine similarity skipped" in m for m in messages)
    # The JSON round-trips.
    assert [os.path.basename(p) for p in result["files"]] == ["temperature_sweep.json"]
    with open(os.path.join(results_dir, "temperature_sweep.json")) as f:
        saved = json.load(f)
    expected_keys = {"experiment", "checkpoint", "step", "split", "context_frames",
                     "target_frames", "clips", "num_samples", "seed", "temperatures",
                     "metrics", "vgg", "vgg_skipped", "psnr_ceiling", "per_temperature",
                     "best_temperature", "selection", "seconds"}
    assert expected_keys <= set(saved) and saved["step"] == 5
    assert saved["per_temperature"] == json.loads(json.dumps(rows))
    table = sweep_lib.format_result(result).splitlines()
    assert table[0].split() == ["temperature", "PSNR", "best", "PSNR", "mean", "SSIM",
                                "best", "SSIM", "mean"]
    assert [line.split()[0] for line in table[2:5]] == ["0.0", "0.5", "1.0"]
    assert "VGG cosine similarity skipped (no --vgg_weights given)" in table[-1]


def test_plots_one_per_metric_and_a_summary(run, tmp_path):
    pytest.importorskip("matplotlib")   # the `plots` extra
    from PIL import Image
    result = sweep_lib.run(quiet_context(run, shapes_like_clips(2, seed=4)),
                           temperatures="0.5,1", num_samples=2, plots=True,
                           results_dir=str(tmp_path))
    names = sorted(os.path.basename(p) for p in result["files"])
    assert names == ["temperature_sweep.json", "temperature_sweep_psnr.png",
                     "temperature_sweep_ssim.png", "temperature_sweep_summary.png"]
    for path in result["files"][1:]:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory):
    """A randomly initialised VGG16(include_top=False) saved to a local weights file."""
    import keras
    keras.utils.set_random_seed(0)
    net = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path_factory.mktemp("vgg") / "vgg16_notop.weights.h5")
    net.save_weights(path)
    return path


def test_vgg_similarity_in_the_sweep(run, vgg_weights, tmp_path):
    clips = shapes_like_clips(2, seed=3)
    result = sweep_lib.run(quiet_context(run, clips), temperatures="0,1", num_samples=2,
                           vgg_weights=vgg_weights, vgg_input_size=32, plots=False,
                           results_dir=str(tmp_path))
    assert result["metrics"] == ["psnr", "ssim", "vgg"] and result["vgg_skipped"] is None
    assert result["vgg"]["input_size"] == 32 and len(result["vgg"]["layers"]) == 18
    for row in result["per_temperature"]:
        assert len(row["vgg"]["best"]) == 2
        assert 0 < row["vgg"]["mean_avg"] <= row["vgg"]["best_avg"] < 1
    zero = result["per_temperature"][0]["vgg"]
    np.testing.assert_allclose(zero["best"], zero["mean"], rtol=1e-6)
    assert "vgg" in result["best_temperature"]
    with open(tmp_path / "temperature_sweep.json") as f:
        assert json.load(f)["vgg"]["layers"] == result["vgg"]["layers"]
    header = sweep_lib.format_result(result).splitlines()[0]
    assert "VGG best" in header and "VGG mean" in header
    assert "skipped" not in sweep_lib.format_result(result)


def test_cli_prints_the_table_and_writes_files(run, tmp_path, capsys):
    results_dir = str(tmp_path / "results")
    code = run_cli(evaluate, [f"--output_dir={run['output_dir']}", EXPERIMENT,
                              f"--data_dir={run['data_dir']}", "--max_clips=3",
                              "--temperatures=0.5,1.0", "--num_samples=2", "--noplots",
                              f"--results_dir={results_dir}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "PSNR best" in out and "SSIM mean" in out and "best temperature" in out
    assert "VGG cosine similarity skipped (no --vgg_weights given)" in out
    assert os.listdir(results_dir) == ["temperature_sweep.json"]
    with open(os.path.join(results_dir, "temperature_sweep.json")) as f:
        saved = json.load(f)
    assert saved["clips"] == 3 and saved["num_samples"] == 2
    assert saved["temperatures"] == [0.5, 1.0] and saved["split"] == "dev"


def test_cli_errors_are_one_line(run, tmp_path, capsys):
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_text("not hdf5")
    missing = tmp_path / "missing_vgg16.h5"
    base = [f"--output_dir={run['output_dir']}", EXPERIMENT, f"--data_dir={run['data_dir']}",
            "--max_clips=2", "--num_samples=1", "--noplots",
            f"--results_dir={tmp_path / 'r'}"]
    cases = [
        (["--temperatures=0.1,x"], "--temperatures: 'x' is not a number"),
        (["--temperatures=-1"], "finite number >= 0; got '-1'"),
        (["--temperatures=0.5,,1"], "has an empty item"),
        (["--temperatures=1,1.0"], "1 is given twice"),
        (["--num_samples=0"], "--num_samples must be >= 1"),
        ([f"--vgg_weights={missing}"], f"--vgg_weights '{missing}' is not a file"),
        ([f"--vgg_weights={garbage}"], f"--vgg_weights '{garbage}' could not be loaded"),
    ]
    for argv, expected in cases:
        assert run_cli(evaluate, base + argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("t2t-videoflow-eval: error: "), err
        assert expected in err and "\n" not in err, (expected, err)
    assert not os.path.exists(tmp_path / "r")

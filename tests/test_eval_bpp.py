"""`t2t-videoflow-eval --experiment=bpp`: the whole split, per-clip noise, the
Monte-Carlo spread, agreement with the trainer's eval, the CLI and its errors."""

import json
import os

import numpy as np
import pytest

from t2t_videoflow.model.noise import clip_noise
from t2t_videoflow.cli import evaluate
from t2t_videoflow.config import registry
from t2t_videoflow.training import trainer as trainer_lib
from t2t_videoflow.evaluation import bpp

from inference_testing import PROBLEM, eval_run, quiet_context, random_clips, run_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data_dir):
    return eval_run(str(tmp_path_factory.mktemp("run")), tiny_data_dir)


def test_clip_scores_do_not_depend_on_the_batching(run):
    """Clip i's noise comes from (seed, draw, i): batches of 3 and of 4 (padded at the
    end) give each clip the same bits per pixel, and no clip is dropped."""
    clips = random_clips((7, 3, 16, 16, 3), seed=1)
    model, n_in = run["model"], run["hparams"].video_num_input_frames
    results = []
    for batch_size in (3, 4):
        scorer = bpp.Scorer(model, n_in, batch_size)
        rows = [scorer(clips[i:i + batch_size], i, 5, 0)
                for i in range(0, 7, batch_size)]
        results.append(np.concatenate(rows))
    assert results[0].shape == (7, 3 - n_in)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)
    # ... and equals the model scoring each clip alone with that clip's noise.
    for i in (0, 6):
        noise = clip_noise(clips[i:i + 1].shape, [5, 0], [i])
        alone = model.bits_per_pixel(clips[i:i + 1], n_in, noise=noise).numpy()
        np.testing.assert_allclose(results[0][i], alone[0], rtol=1e-5)


def test_monte_carlo_draws_differ_and_give_a_standard_error(run):
    clips = random_clips((5, 3, 16, 16, 3), seed=2)
    context = quiet_context(run, clips)
    result = bpp.run(context, seed=0, num_draws=3, batch_size=2)
    assert result["clips"] == 5 and len(result["draws"]) == 3
    assert len(set(result["draws"])) == 3
    draws = np.asarray(result["draws"])
    assert result["bpp"] == pytest.approx(draws.mean())
    assert result["standard_error"] == pytest.approx(draws.std(ddof=1) / np.sqrt(3))
    assert 0 < result["standard_error"] < 0.05 * result["bpp"]
    assert len(result["bpp_per_frame"]) == 3 - run["hparams"].video_num_input_frames
    one = bpp.run(context, seed=0, num_draws=1, batch_size=5)
    assert one["draws"][0] == pytest.approx(result["draws"][0], rel=1e-6)
    assert one["standard_error"] is None


def test_trainer_eval_and_eval_tool_agree_on_the_whole_split(run, tmp_path):
    """The trainer's dev bpp (batch 4 over 21 clips: the last batch is partial, and is
    scored) equals the eval tool's at another batch size, for the same seed."""
    hparams = registry.create_hparams("videoflow_tiny", "", PROBLEM)
    config = trainer_lib.TrainConfig(output_dir=run["output_dir"],
                                     data_dir=run["data_dir"], train_steps=5,
                                     eval_steps=-1, random_seed=3, eval_sample_clips=0)
    trainer = trainer_lib.Trainer(registry.problem(PROBLEM), hparams, config,
                                  log=lambda _: None)
    trainer.restore_for_eval()
    from_trainer = trainer.evaluate()
    result = evaluate.evaluate(run["output_dir"], "bpp", run["data_dir"],
                               results_dir=str(tmp_path), log=lambda _: None,
                               random_seed=3, batch_size=5)
    assert from_trainer["clips"] == result["clips"] == 21
    assert result["bpp"] == pytest.approx(from_trainer["bpp"], rel=1e-5)
    np.testing.assert_allclose(result["bpp_per_frame"], from_trainer["bpp_per_frame"],
                               rtol=1e-5)


def test_cli_prints_the_table_and_writes_json(run, tmp_path, capsys):
    results_dir = str(tmp_path / "results")
    code = run_cli(evaluate, [f"--output_dir={run['output_dir']}", "--experiment=bpp",
                              f"--data_dir={run['data_dir']}", "--max_clips=6",
                              "--num_draws=2", f"--results_dir={results_dir}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "target" in out and "mean bpp" in out and "over 6 clips" in out
    with open(os.path.join(results_dir, "bpp.json")) as f:
        saved = json.load(f)
    assert saved["clips"] == 6 and len(saved["draws"]) == 2 and saved["step"] == 5
    assert saved["split"] == "dev" and saved["experiment"] == "bpp"


def test_cli_errors_are_one_line(run, tmp_path, capsys):
    out, data = run["output_dir"], run["data_dir"]
    cases = [
        ([f"--output_dir={out}", "--experiment=nope", f"--data_dir={data}"],
         "Unknown --experiment 'nope'"),
        ([f"--output_dir={out}", f"--data_dir={data}"], "--experiment is required"),
        ([f"--output_dir={out}", "--experiment=bpp"], "--data_dir is required"),
        ([f"--output_dir={out}", "--experiment=bpp", f"--data_dir={data}",
          "--split=test"], "has no test split"),
        ([f"--output_dir={out}", "--experiment=bpp", f"--data_dir={data}",
          "--num_draws=0"], "--num_draws must be >= 1"),
        ([f"--output_dir={tmp_path / 'missing'}", "--experiment=bpp",
          f"--data_dir={data}"], "does not exist"),
        ([f"--output_dir={out}", "--experiment=bpp", f"--data_dir={tmp_path / 'no'}"],
         "does not exist; run t2t-videoflow-datagen"),
    ]
    for argv, expected in cases:
        assert run_cli(evaluate, argv + [f"--results_dir={tmp_path / 'r'}"]) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("t2t-videoflow-eval: error: "), err
        assert expected in err and "\n" not in err, (expected, err)

"""`t2t-videoflow-eval --experiment=out_of_sequence`: frame t scored right after the
context, equal to the model's bpp of [context, x_t] and to the `bpp` experiment at
t = n+1; the monotonicity rule; the CLI, its files and errors."""

import importlib.util
import json
import os

import numpy as np
import pytest

from t2t_videoflow.model.noise import clip_noise
from t2t_videoflow.cli import evaluate
from t2t_videoflow.evaluation import bpp, context as context_lib, out_of_sequence as oos

from inference_testing import eval_run, quiet_context, random_clips, run_cli

# matplotlib is the optional `plots` extra (CI installs only `test`).
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data_dir):
    return eval_run(str(tmp_path_factory.mktemp("run")), tiny_data_dir)


@pytest.mark.parametrize("means, errors, expected", [
    ([1.0, 2.0, 2.0, 3.0], None, None),            # ties allowed
    ([1.0, 2.0, 1.5, 3.0, 0.0], None, 2),          # the first fall, not the last
    ([3.0, 1.0], None, 1),
    ([1.0, 2.0, 1.5, 3.0], [0.3, 0.3, 0.3, 0.3], 2),     # 0.5 > sqrt(2) 0.3 = 0.42
    ([1.0, 2.0, 1.7, 3.0], [0.3, 0.3, 0.3, 0.3], None),  # 0.3 < 0.42: within the errors
    ([1.0, 2.0, 1.7, 3.0], [0.1, 0.1, 0.1, 0.1], 2),     # 0.3 > 0.14: a fall
    ([1.0, 2.0, 1.7], [None, None, None], 2),            # unknown errors: tolerance 0
    ([5.0], None, None),
    ([], None, None),
])
def test_first_decrease_rule(means, errors, expected):
    assert oos.first_decrease(means, errors) == expected
    assert oos.is_monotonic(means, errors) == (expected is None)


def test_monotonic_rule_rejects_bad_input():
    with pytest.raises(ValueError, match="finite"):
        oos.is_monotonic([1.0, float("nan")])
    with pytest.raises(ValueError, match="2 means but 3 errors"):
        oos.is_monotonic([1.0, 2.0], [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match=">= 0"):
        oos.is_monotonic([1.0, 2.0], [0.1, -0.1])


def test_scores_are_the_model_bpp_of_context_then_frame(run):
    """Column k is `bits_per_pixel([x_0..x_{n-1}, x_{n+k}])` with each frame's own noise
    slot of the whole clip; the batching (2 vs 3, padded) does not change it."""
    model, n = run["model"], run["hparams"].video_num_input_frames
    clips = random_clips((3, n + 3, 16, 16, 3), seed=4)
    results = []
    for batch_size in (2, 3):
        scorer = oos.OutOfSequenceScorer(model, n, batch_size)
        rows = [scorer(clips[i:i + batch_size], i, 7) for i in range(0, 3, batch_size)]
        results.append(np.concatenate(rows))
    assert results[0].shape == (3, 3)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)
    for i, k in ((0, 2), (2, 1)):
        noise = clip_noise(clips[i:i + 1].shape, [7, 0], [i]).numpy()
        keep = list(range(n)) + [n + k]
        expected = model.bits_per_pixel(clips[i:i + 1, keep], n,
                                        noise=noise[:, keep]).numpy()
        np.testing.assert_allclose(results[0][i, k], expected[0, 0], rtol=1e-5)
    # A later frame as the next frame is not scored like its true successor.
    assert not np.allclose(results[0][:, 0], results[0][:, 2])


def test_first_frame_equals_the_bpp_experiment(run):
    """At t = n+1 the out-of-sequence score is the ordinary bpp of the first target,
    clip by clip on average (same seed, same per-clip noise)."""
    clips = random_clips((5, 3, 16, 16, 3), seed=5)
    context = quiet_context(run, clips)
    result = oos.run(context, seed=3, batch_size=2, plots=False)
    ordinary = bpp.run(context, seed=3, batch_size=4)
    n = run["hparams"].video_num_input_frames
    assert result["frames"] == list(range(n + 1, 4)) and result["clips"] == 5
    assert result["bpp_mean"][0] == pytest.approx(ordinary["bpp_per_frame"][0], rel=1e-5)
    # The standard error is over clips: recomputed from the per-clip scores.
    scores = oos.OutOfSequenceScorer(run["model"], n, 5)(clips, 0, 3)
    np.testing.assert_allclose(result["bpp_mean"], scores.mean(0), rtol=1e-5)
    np.testing.assert_allclose(result["bpp_stderr"],
                               scores.std(0, ddof=1) / np.sqrt(5), rtol=1e-4)
    assert result["monotonic"] == oos.is_monotonic(result["bpp_mean"],
                                                   result["bpp_stderr"])


def test_one_clip_has_no_standard_error_and_unconditional_is_refused(run):
    clips = random_clips((1, 3, 16, 16, 3), seed=6)
    result = oos.run(quiet_context(run, clips), plots=False)
    assert result["bpp_stderr"] == [None, None] and result["clips"] == 1
    assert "-" in oos.format_result(result)
    hp = run["hparams"].copy()
    hp.gen_mode = "unconditional"
    context = context_lib.RunContext.from_arrays(run["model"], hp, clips)
    with pytest.raises(ValueError, match="needs a conditional model"):
        oos.run(context)


def test_cli_writes_table_json_and_plot(run, tmp_path, capsys):
    results_dir = str(tmp_path / "results")
    code = run_cli(evaluate, [f"--output_dir={run['output_dir']}",
                              "--experiment=out_of_sequence", f"--data_dir={run['data_dir']}",
                              "--max_clips=4", "--num_frames=5", "--batch_size=3",
                              f"--plots={HAS_MATPLOTLIB}", f"--results_dir={results_dir}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "mean bpp" in out and "stderr" in out and "of 4 clips" in out
    with open(os.path.join(results_dir, "out_of_sequence.json")) as f:
        saved = json.load(f)
    assert saved["frames"] == [2, 3, 4, 5] and saved["clips"] == 4
    assert len(saved["bpp_mean"]) == len(saved["bpp_stderr"]) == 4
    assert all(e > 0 for e in saved["bpp_stderr"])
    if HAS_MATPLOTLIB:
        with open(os.path.join(results_dir, "out_of_sequence.png"), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# Without matplotlib the results are written and the plot is skipped with a note:
# tests/test_eval_plots_optional.py.


def test_cli_errors_are_one_line(run, tmp_path, capsys):
    base = [f"--output_dir={run['output_dir']}", "--experiment=out_of_sequence",
            f"--data_dir={run['data_dir']}", f"--results_dir={tmp_path}", "--plots=false"]
    for extra, expected in ((["--num_frames=1"], "leaves no frame to score"),
                            (["--num_frames=6"], "needs 6 frames per clip, but the data "
                                                 "has 5")):
        assert run_cli(evaluate, base + extra) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("t2t-videoflow-eval: error: ") and "\n" not in err, err
        assert expected in err, err

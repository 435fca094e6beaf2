"""Exporter: SavedModel round trip in a fresh process, input checks, atomic writes, CLI."""

import contextlib
import io
import json
import re
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from t2t_videoflow.serving import saved_model as export_lib
from t2t_videoflow.cli import exporter
from t2t_videoflow.training import restore
from t2t_videoflow.serving.saved_model import BPP_NOISE

from inference_testing import (FRAME_SHAPE, make_model, make_run_dir, random_clips,
                               run_cli)

CLI = os.path.join(os.path.dirname(sys.executable), "t2t-videoflow-exporter")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run dir with checkpoints 3 and 7, exported by the CLI's `main` (newest)."""
    output_dir = str(tmp_path_factory.mktemp("run"))
    model, hparams = make_run_dir(output_dir, steps=(3, 7))
    capture = io.StringIO()
    with contextlib.redirect_stdout(capture):
        assert run_cli(exporter, [f"--output_dir={output_dir}"]) == 0
    base = os.path.join(output_dir, "export")
    (version,) = os.listdir(base)
    return dict(output_dir=output_dir, model=model, hparams=hparams,
                path=os.path.join(base, version), lines=capture.getvalue().splitlines())


@pytest.fixture(scope="module")
def loaded(run):
    return tf.saved_model.load(run["path"])


def test_export_layout_and_metadata(run):
    path = run["path"]
    base = os.path.join(run["output_dir"], "export")
    assert os.path.dirname(path) == base and os.path.basename(path).isdigit()
    assert os.listdir(base) == [os.path.basename(path)]        # no temporary left over
    assert os.path.exists(os.path.join(path, "saved_model.pb"))
    with open(os.path.join(path, "assets.extra", "videoflow.json")) as f:
        info = json.load(f)
    assert info["frame_shape"] == list(FRAME_SHAPE)
    assert info["num_context"] == 1 and info["min_context_frames"] == 1
    assert info["step"] == 7 and info["checkpoint"].endswith("model.ckpt-7")
    assert info["problem"] == "stochastic_shapes_tiny"
    assert info["hparams_set"] == "videoflow_tiny"
    assert any(path in line and "MiB" in line for line in run["lines"])


def test_the_last_line_lists_exactly_the_saved_signatures(run, loaded):
    last = run["lines"][-1]
    assert last.startswith(f"{exporter.NAME}: SavedModel written to {run['path']} ")
    printed = last.split("; signatures ", 1)[1].split(", ")
    assert sorted(printed) == sorted(loaded.signatures.keys())
    assert "bits_per_pixel_monte_carlo" in printed
    assert printed == sorted(set(printed))                    # each name once, sorted


def test_round_trip_every_signature_in_fresh_process(run, tmp_path):
    """The SavedModel, loaded where t2t_videoflow is never imported, reproduces the
    in-process model: bpp (noise 1/512), sample (up to bins that float rounding can
    flip), encode and decode."""
    model, hparams = run["model"], run["hparams"]
    frames = random_clips((2, 4, *FRAME_SHAPE), seed=1)
    context = frames[:, :2]
    n_in = hparams.video_num_input_frames
    expected = {
        "frames": frames, "context": context,
        "bpp": model.bits_per_pixel(frames, n_in,
                                    noise=tf.fill(frames.shape, BPP_NOISE)).numpy(),
        # The Monte-Carlo signature's draws d = 0, 1, 2 for seed 7.
        "bpp_draws": np.stack([model.bits_per_pixel(frames, n_in, seed=[7, d]).numpy()
                               for d in range(3)]),
        # Float samples (before quantisation): the served uint8 frames must equal their
        # quantisation except where graph rewrites' rounding can flip a bin (below).
        "sample": model.sample_with_log_density(context, 5, 0.7, seed=3)[0].numpy(),
        "sample_t0": model.sample_with_log_density(context, 2, 0.0, seed=0)[0].numpy(),
    }
    latents = model.encode(frames)
    expected["level_0"] = latents["levels"][0].numpy()
    expected["top"] = latents["top"].numpy()
    expected["decoded"] = model.decode(latents).numpy()
    np.testing.assert_array_equal(expected["decoded"], frames)   # the flow is exact
    np.savez(tmp_path / "expected.npz", **expected)
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import tensorflow as tf
        e = np.load(sys.argv[2])

        def assert_quantised(served, x):
            # T2T's postprocess: trunc((clip(x, -.5, .5) + .5) * 256), clipped to 255.
            x = np.where(np.isfinite(x), x, 1.0)
            v = (np.clip(x, -0.5, 0.5) + 0.5) * 256.0
            expected = np.clip(v, 0, 255).astype(np.uint8)
            # Within 1e-3 of a bin edge, float rounding may land on either side.
            # (Clipped values sit exactly on the outer edges 0 and 256: not counted.)
            edge = ((np.abs(v - np.round(v)) < 1e-3) & (np.round(v) > 0)
                    & (np.round(v) < 256))
            diff = np.abs(served.astype(int) - expected.astype(int))
            assert np.all(diff[~edge] == 0), np.argwhere((diff > 0) & ~edge)[:5]
            assert np.all(diff <= 1) and edge.mean() < 0.01, (diff.max(), edge.mean())

        m = tf.saved_model.load(sys.argv[1])
        s = m.signatures
        assert sorted(s) == ["bits_per_pixel", "bits_per_pixel_monte_carlo", "decode",
                             "encode", "sample", "serving_default"], sorted(s)
        bpp = s["bits_per_pixel"](frames=tf.constant(e["frames"]))["bits_per_pixel"]
        np.testing.assert_allclose(bpp, e["bpp"], rtol=1e-5, atol=1e-5)
        assert bpp.shape == (2, 3)
        mc = s["bits_per_pixel_monte_carlo"](frames=tf.constant(e["frames"]),
                                             seed=tf.constant(7), num_draws=tf.constant(3))
        draws = e["bpp_draws"]
        np.testing.assert_allclose(mc["bits_per_pixel"], draws.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(mc["standard_error"],
                                   draws.std(0, ddof=1) / np.sqrt(3), rtol=1e-3, atol=1e-5)
        # The signatures declare the model's sizes (saved_model_cli shows them).
        spec = s["sample"].structured_input_signature[1]["context"]
        assert spec.shape.as_list() == [None, None, 16, 16, 3], spec
        for name in ("sample", "serving_default"):
            out = s[name](context=tf.constant(e["context"]), num_frames=tf.constant(5),
                          temperature=tf.constant(0.7), seed=tf.constant(3))["frames"]
            assert out.dtype == tf.uint8 and out.shape == (2, 5, 16, 16, 3)
            assert_quantised(out.numpy(), e["sample"])
        out = s["sample"](context=tf.constant(e["context"]), num_frames=tf.constant(2),
                          temperature=tf.constant(0.0), seed=tf.constant(0))["frames"]
        assert_quantised(out.numpy(), e["sample_t0"])
        enc = s["encode"](frames=tf.constant(e["frames"]))
        assert sorted(enc) == ["level_0", "top"]
        np.testing.assert_allclose(enc["level_0"], e["level_0"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(enc["top"], e["top"], rtol=1e-5, atol=1e-5)
        dec = s["decode"](level_0=tf.constant(e["level_0"]), top=tf.constant(e["top"]))
        np.testing.assert_array_equal(dec["frames"], e["decoded"])
        leaked = sorted(k for k in sys.modules if k.startswith("t2t_videoflow"))
        assert not leaked, leaked
        print("ROUND TRIP OK")
    """)
    result = subprocess.run([sys.executable, "-c", script, run["path"],
                             str(tmp_path / "expected.npz")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ROUND TRIP OK" in result.stdout


def _call_error(fn, **kwargs):
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn(**{k: tf.constant(v) for k, v in kwargs.items()})
    return info.value.message


SAMPLE_OK = dict(num_frames=np.int32(2), temperature=np.float32(1.0), seed=np.int32(0))


@pytest.mark.parametrize("change, pattern", [
    (dict(context=random_clips((1, 2, 8, 16, 3))),
     r"context must have shape \[batch, time, 16, 16, 3\]; got shape.*1 2 8 16 3"),
    (dict(context=random_clips((1, 2, 16, 16, 4))),
     r"context must have shape \[batch, time, 16, 16, 3\]"),
    (dict(context=random_clips((2, 16, 16, 3))),
     r"context must have shape \[batch, time, 16, 16, 3\]; got shape.*2 16 16 3"),
    (dict(context=random_clips((1, 0, 16, 16, 3))),
     r"context needs at least 1 frame"),
    (dict(context=random_clips((0, 2, 16, 16, 3))),
     r"context needs a batch of at least 1 clip"),
    (dict(temperature=np.float32(-0.5)), r"temperature must be >= 0"),
    (dict(temperature=np.float32(np.nan)), r"temperature must be finite"),
    (dict(temperature=np.float32([1.0, 2.0])), r"temperature"),
    (dict(num_frames=np.int32(0)), r"num_frames must be >= 1"),
])
def test_sample_rejects_bad_input(loaded, change, pattern):
    kwargs = dict(context=random_clips((1, 2, *FRAME_SHAPE)), **SAMPLE_OK)
    kwargs.update(change)
    assert re.search(
        pattern, _call_error(loaded.signatures["sample"], **kwargs))


def test_bits_per_pixel_encode_decode_reject_bad_input(loaded):
    bpp = loaded.signatures["bits_per_pixel"]
    message = _call_error(bpp, frames=random_clips((1, 1, *FRAME_SHAPE)))
    assert "frames needs at least 2 frame(s)" in message     # 1 context + 1 scored
    message = _call_error(bpp, frames=random_clips((1, 3, 16, 8, 3)))
    assert "frames must have shape [batch, time, 16, 16, 3]" in message
    monte_carlo = loaded.signatures["bits_per_pixel_monte_carlo"]
    message = _call_error(monte_carlo, frames=random_clips((1, 3, *FRAME_SHAPE)),
                          seed=np.int32(0), num_draws=np.int32(0))
    assert "num_draws must be >= 1" in message
    message = _call_error(loaded.signatures["encode"],
                          frames=random_clips((1, 2, 32, 32, 3)))
    assert "frames must have shape [batch, time, 16, 16, 3]" in message
    enc = loaded.signatures["encode"](frames=tf.constant(random_clips((1, 2, *FRAME_SHAPE))))
    decode = loaded.signatures["decode"]
    level_0, top = enc["level_0"].numpy(), enc["top"].numpy()
    message = _call_error(decode, level_0=level_0[..., :3], top=top)
    assert "level_0 must have shape [batch, time, 8, 8, 6]" in message
    message = _call_error(decode, level_0=level_0[:, :1], top=top)
    assert "level_0 and top must have the same batch and time dimensions" in message
    message = _call_error(decode, level_0=level_0, top=top * np.float32(np.nan))
    assert "top must be finite" in message


def test_interrupted_export_leaves_nothing(run, tmp_path, monkeypatch):
    base = str(tmp_path / "export")

    def broken_save(obj, export_dir, signatures=None, **kwargs):
        os.makedirs(os.path.join(export_dir, "variables"))
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export_lib.export_saved_model(run["model"], run["hparams"], base)
    assert os.listdir(base) == []


def test_exporter_cli_errors(run, tmp_path, capsys):
    empty = str(tmp_path / "no_checkpoint")
    os.makedirs(empty)
    from t2t_videoflow.training import run_dir
    run_dir.save_run(empty, run["hparams"], "stochastic_shapes_tiny", "videoflow_tiny")
    cases = [
        ([f"--output_dir={tmp_path / 'missing'}"], "does not exist"),
        ([f"--output_dir={empty}"], "No checkpoint in"),
        ([f"--output_dir={run['output_dir']}", "--checkpoint_path=/nope/model.ckpt-1"],
         "Checkpoint '/nope/model.ckpt-1' not found"),
        ([f"--output_dir={run['output_dir']}", "--problem=stochastic_shapes"],
         "16x16x3 frames but problem 'stochastic_shapes' has 64x64x3"),
        ([f"--output_dir={run['output_dir']}", "--problem=stochastic_shape_tiny"],
         "Unknown problem 'stochastic_shape_tiny'"),
        ([f"--output_dir={run['output_dir']}", "--hparams=depthh=2"], "depthh"),
        ([f"--output_dir={run['output_dir']}", "--hparams=depth=2"], "does not fit"),
    ]
    for argv, expected in cases:
        assert run_cli(exporter, argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("t2t-videoflow-exporter: error: ") and expected in err, err
        assert "\n" not in err
    # Only the fixture's export: failed runs add nothing under export/.
    assert os.listdir(os.path.join(run["output_dir"], "export")) == [
        os.path.basename(run["path"])]


def test_named_checkpoint_is_restored(run):
    """--checkpoint_path picks an older checkpoint (other weights) over the newest."""
    ckpt = os.path.join(run["output_dir"], "model.ckpt-3")
    older = restore.restore_for_inference(run["output_dir"], checkpoint_path=ckpt)
    newest = restore.restore_for_inference(run["output_dir"])
    assert (older.step, newest.step) == (3, 7)
    first = lambda r: r.model.flow.trainable_variables[0].numpy()
    np.testing.assert_allclose(first(older), first(newest) + 1.0, rtol=1e-6)
    np.testing.assert_array_equal(first(newest),
                                  run["model"].flow.trainable_variables[0].numpy())


def test_exporter_console_script_error_is_one_line(tmp_path):
    result = subprocess.run([CLI, f"--output_dir={tmp_path / 'missing'}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if "t2t-videoflow-exporter" in l]
    assert lines == [f"t2t-videoflow-exporter: error: Output dir "
                     f"'{tmp_path / 'missing'}' does not exist."]


def test_pointwise_encoder_is_refused():
    model, _ = make_model("latent_dist_encoder=pointwise")
    with pytest.raises(export_lib.ExportError, match="pointwise"):
        export_lib.ServingModule(model, 1)


def test_a_killed_exports_temporary_dir_is_removed_by_the_next_export(run, tmp_path):
    """A `.tmp-<version>-<pid>` dir whose process is gone is removed; one of a live
    process (an export in progress) and other names are left alone."""
    base = tmp_path / "export"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = base / f".tmp-123-{dead.pid}" / "variables"
    abandoned.mkdir(parents=True)
    running = base / f".tmp-124-{os.getpid()}"
    running.mkdir()
    (base / "notes").mkdir()
    path = export_lib.export_saved_model(run["model"], run["hparams"], str(base),
                                         timestamp=200)
    assert sorted(os.listdir(base)) == sorted(
        [f".tmp-124-{os.getpid()}", "200", "notes"]), os.listdir(base)
    assert path.endswith("200")

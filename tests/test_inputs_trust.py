"""Untrusted inputs: each is refused with one line naming the problem (or read right).

The SavedModel's sample length bound, 16-bit / palette PNGs, empty batches, bad
TF_CONFIG, a file as --decode_to_file, a non-checkpoint T2T .index, a usr dir that
calls sys.exit, and two exporters racing on one run.
"""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2t_videoflow.data import media
from t2t_videoflow.errors import MediaError, UsageError
from t2t_videoflow.serving import saved_model as export_lib
from t2t_videoflow.training import distribute

from inference_testing import FRAME_SHAPE, make_run_dir, random_clips

BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _script(name, *argv, timeout=300):
    return subprocess.run([os.path.join(BIN, name), *argv], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


def _error_lines(result, name):
    return [l for l in result.stderr.splitlines() if l.startswith(f"{name}: ")]


def _tree(path):
    """Every file under `path` with its bytes (to check nothing saved was lost)."""
    out = {}
    for root, _, names in os.walk(path):
        for n in names:
            full = os.path.join(root, n)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained-looking run dir (checkpoint 7)."""
    output_dir = str(tmp_path_factory.mktemp("run"))
    model, hparams = make_run_dir(output_dir)
    return dict(output_dir=output_dir, model=model, hparams=hparams)


# ---------------------------------------------- 1. the sample signature's length bound


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("export"))
    path = export_lib.export_saved_model(run["model"], run["hparams"], base)
    return dict(path=path, loaded=tf.saved_model.load(path))


def test_sample_signature_refuses_num_frames_above_the_maximum(exported):
    limit = getattr(export_lib, "MAX_SAMPLE_FRAMES", 1000)
    loaded = exported["loaded"]
    context = tf.constant(random_clips((1, 1, *FRAME_SHAPE), seed=3))
    args = dict(context=context, temperature=tf.constant(0.5), seed=tf.constant(1))
    for name in ("sample", "serving_default"):
        start = time.time()
        with pytest.raises(tf.errors.InvalidArgumentError) as info:
            loaded.signatures[name](num_frames=tf.constant(limit + 1), **args)
        assert time.time() - start < 30, "checked before sampling, not after"
        message = " ".join(str(info.value.message).split())
        assert f"num_frames must be <= {limit}" in message, message
        assert str(limit + 1) in message, message
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"<= {limit}"):
            loaded.signatures[name](num_frames=tf.constant(2**31 - 1), **args)
    # The function attribute too (the same traced function), and small lengths work.
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"<= {limit}"):
        loaded.sample(context, tf.constant(limit + 1), tf.constant(0.5), tf.constant(1))
    frames = loaded.signatures["sample"](num_frames=tf.constant(2), **args)["frames"]
    assert frames.shape == (1, 2, *FRAME_SHAPE) and frames.dtype == tf.uint8


def test_monte_carlo_signature_refuses_num_draws_above_the_maximum(exported):
    loaded = exported["loaded"]
    frames = tf.constant(random_clips((1, 2, *FRAME_SHAPE), seed=4))
    signature = loaded.signatures["bits_per_pixel_monte_carlo"]
    start = time.time()
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_draws must be <= 1000"):
        signature(frames=frames, seed=tf.constant(0), num_draws=tf.constant(2**31 - 1))
    assert time.time() - start < 30, "checked before scoring, not after"
    out = signature(frames=frames, seed=tf.constant(0), num_draws=tf.constant(2))
    assert np.isfinite(out["bits_per_pixel"].numpy()).all()


def test_the_maximum_is_recorded_in_the_export_metadata(exported):
    with open(os.path.join(exported["path"], "assets.extra", "videoflow.json")) as f:
        info = json.load(f)
    assert info["max_sample_frames"] == export_lib.MAX_SAMPLE_FRAMES == 1000
    assert info["max_num_draws"] == export_lib.MAX_NUM_DRAWS == 1000


# ------------------------------------------------------------- 2. 16-bit, palette PNGs


def test_16_bit_grey_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    shape = (16, 12, 3)
    values = (np.arange(16 * 12, dtype=np.uint32).reshape(16, 12) * 341 % 65536
              ).astype(np.uint16)
    tf.io.write_file(str(tmp_path / "0.png"), tf.io.encode_png(values[..., None]))
    with Image.open(tmp_path / "0.png") as image:
        assert image.mode.startswith("I")              # really a 16-bit grey PNG
    clips = media.read_frames(str(tmp_path), shape)
    expected = (values >> 8).astype(np.uint8)
    assert clips.shape == (1, 1, *shape) and clips.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(clips[0, 0, ..., c], expected)


def test_16_bit_rgb_png_is_scaled_to_8_bits(tmp_path):
    shape = (16, 12, 3)
    values = random_clips((16, 12, 3), seed=4).astype(np.uint16) * 257 + 128
    tf.io.write_file(str(tmp_path / "0.png"), tf.io.encode_png(values))
    clips = media.read_frames(str(tmp_path), shape)
    np.testing.assert_array_equal(clips[0, 0], (values >> 8).astype(np.uint8))


def test_palette_png_with_transparency_is_refused_and_opaque_palette_read(tmp_path):
    shape = (16, 12, 3)
    index = (np.arange(16 * 12).reshape(16, 12) % 3).astype(np.uint8)
    palette = [10, 20, 30, 200, 100, 0, 0, 255, 0] + [0] * (3 * 253)
    clear, opaque = tmp_path / "clear", tmp_path / "opaque"
    clear.mkdir()
    opaque.mkdir()
    image = Image.fromarray(index, "P")
    image.putpalette(palette)
    image.save(clear / "0.png", transparency=0)
    image.save(opaque / "0.png")
    with pytest.raises(MediaError) as info:
        media.read_frames(str(clear), shape)
    message = str(info.value)
    assert "\n" not in message
    assert str(clear / "0.png") in message and "transparency" in message, message
    assert "opaque RGB" in message, message
    # Without transparency the palette is looked up, as Pillow converts it.
    clips = media.read_frames(str(opaque), shape)
    np.testing.assert_array_equal(clips[0, 0], np.asarray(palette[:9]).reshape(3, 3)[index])


# ----------------------------------------------------------------- 3. a batch of 0 clips


def test_empty_batch_is_named_in_the_python_api(run):
    model = run["model"]
    empty = np.zeros((0, 3, *FRAME_SHAPE), np.uint8)
    with pytest.raises(ValueError, match=r"frames is an empty batch \(0 clips"):
        model.bits_per_pixel(empty, 1)
    with pytest.raises(ValueError, match=r"context_frames is an empty batch \(0 clips"):
        model.sample(empty[:, :1], 2, 0.5, seed=0)


# --------------------------------------------------------------------------- 4. TF_CONFIG


@pytest.mark.parametrize("config, expected", [
    ("[]", "TF_CONFIG must be a JSON object"),
    ('"worker"', "TF_CONFIG must be a JSON object"),
    (json.dumps({"cluster": {"worker": ["localhost:1", "localhost:2"]}}),
     "TF_CONFIG has no \"task\""),
    (json.dumps({"cluster": {"worker": ["localhost:1", "localhost:2"]},
                 "task": {"type": "worker", "index": 7}}),
     "TF_CONFIG task index 7 is out of range: the cluster has 2 worker task(s)"),
    (json.dumps({"cluster": {"worker": ["localhost:1", "localhost:2"]},
                 "task": {"type": "ps", "index": 0}}),
     "TF_CONFIG task type 'ps' is not in the cluster"),
    (json.dumps({"cluster": ["localhost:1"], "task": {"type": "worker", "index": 0}}),
     "TF_CONFIG \"cluster\" must be an object"),
])
def test_bad_tf_config_is_one_usage_error(monkeypatch, config, expected):
    monkeypatch.setenv("TF_CONFIG", config)
    for name in ("auto", "multi_worker"):
        with pytest.raises(UsageError) as info:
            distribute.make_strategy(name)
        message = str(info.value)
        assert expected in message and "\n" not in message, message


def test_bad_tf_config_through_the_trainer_console_script(tiny_data_dir, tmp_path):
    env = dict(ENV, TF_CONFIG=json.dumps(
        {"cluster": {"worker": ["localhost:1", "localhost:2"]},
         "task": {"type": "worker", "index": 7}}))
    result = subprocess.run(
        [os.path.join(BIN, "t2t-videoflow-trainer"), "--problem=stochastic_shapes_tiny",
         "--hparams_set=videoflow_tiny", f"--data_dir={tiny_data_dir}",
         f"--output_dir={tmp_path / 'run'}", "--train_steps=1"],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = _error_lines(result, "t2t-videoflow-trainer")
    assert len(lines) == 1 and lines[0].startswith("t2t-videoflow-trainer: error: "), lines
    assert "task index 7 is out of range" in lines[0], lines
    assert not any((tmp_path / "run").glob("model.ckpt-*")) if (tmp_path / "run").exists() \
        else True


# ------------------------------------------------------ 5. --decode_to_file is a file


def test_decode_to_file_that_is_a_file_is_one_line(run, tmp_path):
    np.save(tmp_path / "clip.npy", random_clips((2, *FRAME_SHAPE), seed=5))
    target = tmp_path / "samples"
    target.write_text("my notes\n")
    result = _script("t2t-videoflow-decoder", f"--output_dir={run['output_dir']}",
                     f"--input_frames={tmp_path / 'clip.npy'}", "--num_samples=1",
                     "--num_target_frames=1", f"--decode_to_file={target}")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert _error_lines(result, "t2t-videoflow-decoder") == [
        f"t2t-videoflow-decoder: error: --decode_to_file {str(target)!r} is an existing "
        "file, not a directory; give a directory (created if missing)."]
    assert target.read_text() == "my notes\n"                 # the file is untouched
    assert not os.path.exists(os.path.join(run["output_dir"], "decode"))


# ------------------------------------------------- 6. a T2T checkpoint that is not one


def test_t2t_import_of_a_text_index_file_names_the_file(tmp_path):
    prefix = tmp_path / "t2t" / "model.ckpt-5"
    prefix.parent.mkdir()
    index = tmp_path / "t2t" / "model.ckpt-5.index"
    index.write_text("this is not a checkpoint\n")
    out = tmp_path / "imported"
    result = _script("t2t-videoflow-import", f"--t2t_checkpoint={prefix}",
                     "--problem=stochastic_shapes_tiny", "--hparams_set=videoflow_tiny",
                     f"--output_dir={out}")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = _error_lines(result, "t2t-videoflow-import")
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("t2t-videoflow-import: error: ")
    assert f"{str(index)!r} is not a readable TensorFlow checkpoint index" in lines[0], lines
    assert index.read_text() == "this is not a checkpoint\n"
    assert not out.exists() or not os.listdir(out)


# ------------------------------------------------------- 7. a usr dir calling sys.exit


def test_usr_dir_calling_sys_exit_is_one_line_and_exit_1(tmp_path):
    """The command exits 1 with one line (not 0 and silent); every way of exiting is
    named (in process, as the command's import does)."""
    from t2t_videoflow.config.usr_dir import import_usr_dir
    from t2t_videoflow.errors import UsrDirError
    for k, (call, shown) in enumerate([("sys.exit('bye')", "sys.exit('bye')"),
                                       ("raise SystemExit", "sys.exit(None)")]):
        other = tmp_path / f"exiting_{k}"
        other.mkdir()
        (other / "__init__.py").write_text(f"import sys\n{call}\n")
        with pytest.raises(UsrDirError, match=rf"called {re.escape(shown)} while being "
                                              "imported"):
            import_usr_dir(str(other))
    call, shown = "sys.exit(0)", "sys.exit(0)"
    pkg = tmp_path / "exiting_usr"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"import sys\n{call}\n")
    data = tmp_path / "data"
    result = _script("t2t-videoflow-datagen", "--problem=stochastic_shapes_tiny",
                     f"--data_dir={data}", f"--t2t_usr_dir={pkg}")
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr
    lines = _error_lines(result, "t2t-videoflow-datagen")
    assert lines == [f"t2t-videoflow-datagen: error: --t2t_usr_dir {pkg}: module "
                     f"'exiting_usr' called {shown} while being imported; a usr dir "
                     "must only define and register problems and hparams sets."], lines
    assert not data.exists() or not os.listdir(data)


# ------------------------------------------------------------- 8. two exporters at once


def test_two_exporters_at_once_both_succeed_in_distinct_dirs(run, tmp_path):
    base = tmp_path / "exports"
    base.mkdir()
    # Earlier exports at every version the two could pick by the clock, so both pick
    # the same next free version (the race happens, deterministically); they must
    # survive untouched.
    now = int(time.time())
    for version in range(now - 5, now + 400):
        (base / str(version)).mkdir()
        (base / str(version) / "keep.txt").write_text(str(version))
    before = _tree(base)
    procs = [subprocess.Popen(
        [os.path.join(BIN, "t2t-videoflow-exporter"), f"--output_dir={run['output_dir']}",
         f"--export_dir={base}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=ENV) for _ in range(2)]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for code, out, err in results:
        assert code == 0, err[-3000:]
    written = sorted(set(os.listdir(base)) - set(str(v) for v in range(now - 5, now + 400)))
    assert len(written) == 2 and all(v.isdigit() for v in written), os.listdir(base)
    for version in written:
        assert os.path.exists(base / version / "saved_model.pb")
        assert any(str(base / version) in out for _, out, _ in results)
    after = _tree(base)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [n for n in os.listdir(base) if n.startswith(".tmp-")]

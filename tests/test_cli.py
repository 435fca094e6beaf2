"""The CLIs' shared front end: fast flag checks before TensorFlow, --help, quiet start-up."""

import os
import subprocess
import sys

import pytest

from t2t_videoflow.errors import UsageError

from t2t_videoflow import errors
from t2t_videoflow.cli import tool as cli
from t2t_videoflow.cli import datagen
from t2t_videoflow.cli import decoder
from t2t_videoflow.cli import evaluate
from t2t_videoflow.cli import exporter
from t2t_videoflow.cli import motion as motion_main
from t2t_videoflow.cli import t2t_import
from t2t_videoflow.cli import trainer

BIN = os.path.dirname(sys.executable)
TOOLS = {"trainer": trainer, "datagen": datagen, "decoder": decoder,
         "exporter": exporter, "motion": motion_main, "import": t2t_import,
         "eval": evaluate}
# The environment without TF_CPP_MIN_LOG_LEVEL (which would switch the quieting off).
QUIET_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def console(tool, *args, env=None):
    return subprocess.run([os.path.join(BIN, f"t2t-videoflow-{tool}"), *args],
                          capture_output=True, text=True, timeout=120,
                          env=env or QUIET_ENV)


def test_tool_modules_do_not_import_tensorflow():
    code = ("import sys; import t2t_videoflow.cli.trainer, t2t_videoflow.cli.datagen, "
            "t2t_videoflow.cli.decoder, t2t_videoflow.cli.exporter, t2t_videoflow.cli.motion, "
            "t2t_videoflow.cli.t2t_import, t2t_videoflow.cli.evaluate; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("tool,args,message", [
    ("trainer", ["--data_dir=D"], "--output_dir is required."),
    ("trainer", ["--data_dir=D", "--output_dir={tmp}/run", "--train_steps=-5"],
     "--train_steps must be >= 1; got -5."),
    ("datagen", ["--data_dir=D"], "--problem is required."),
    ("import", ["--problem=P", "--hparams_set=S", "--output_dir=O"],
     "--t2t_checkpoint is required."),
    ("decoder", ["--output_dir={tmp}/run", "--num_samples=0"],
     "--num_samples must be >= 1; got 0."),
    ("exporter", [], "--output_dir is required."),
    ("motion", ["--output_dir={tmp}/run", "--data_dir=D", "--batch=-1"],
     "--batch must be >= 1; got -1."),
    ("trainer", ["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    # Hparams sets load without TensorFlow: a bad override fails as fast.
    ("trainer", ["--data_dir=D", "--output_dir={tmp}/run", "--hparams_set=videoflow_tiny",
                 "--hparams=temperature=-1"],
     "Hparam 'temperature'=-1.0 (hparams set 'videoflow_tiny') must be >= 0.0."),
    ("trainer", ["--data_dir=D", "--output_dir={tmp}/run", "--hparams_set=videoflow_tiny",
                 "--hparams=depth=1,,coupling=affine"],
     "Malformed hparams string 'depth=1,,coupling=affine': empty element between commas."),
])
def test_bad_flags_fail_with_one_error_line(tool, args, message, tmp_path):
    result = console(tool, *[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"t2t-videoflow-{tool}: error: {message}"]
    assert not os.listdir(tmp_path)          # nothing written


def _in_process(module, argv, capsys):
    cli.FLAGS.unparse_flags()
    try:
        cli.FLAGS(["prog", *argv])
        code = module.main(["prog"])
    finally:
        cli.FLAGS.unparse_flags()
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("flag,value,message", [
    ("train_steps", 0, "--train_steps must be >= 1; got 0."),
    ("eval_steps", 0, "--eval_steps must be -1 or >= 1; got 0."),
    ("eval_steps", -2, "--eval_steps must be -1 or >= 1; got -2."),
    ("save_checkpoints_steps", 0, "--save_checkpoints_steps must be >= 1; got 0."),
    ("log_every_steps", -1, "--log_every_steps must be >= 1; got -1."),
    ("keep_checkpoint_max", 0, "--keep_checkpoint_max must be >= 1; got 0."),
    ("local_eval_frequency", 0, "--local_eval_frequency must be >= 1; got 0."),
    ("num_cpu_devices", 0, "--num_cpu_devices must be >= 1; got 0."),
    ("eval_sample_clips", -1, "--eval_sample_clips must be >= 0; got -1."),
    ("random_seed", -3, "--random_seed must be >= 0; got -3."),
    ("random_seed", 2**31, f"--random_seed must be <= {2**31 - 1}; got {2**31}."),
    ("eval_timeout_secs", 0, "--eval_timeout_secs must be >= 1; got 0."),
])
def test_trainer_refuses_out_of_range_flags_before_writing(flag, value, message, tmp_path,
                                                           capsys):
    out = tmp_path / "run"
    code, err = _in_process(trainer, [f"--data_dir={tmp_path}/data", f"--output_dir={out}",
                                      "--problem=stochastic_shapes_tiny",
                                      "--hparams_set=videoflow_tiny", f"--{flag}={value}"],
                            capsys)
    assert code == 1
    assert err == f"t2t-videoflow-trainer: error: {message}"
    assert not out.exists()


def test_eval_steps_minus_one_is_allowed():
    cli.FLAGS.unparse_flags()
    try:
        cli.FLAGS(["prog", "--eval_steps=-1", "--data_dir=D", "--output_dir=O"])
        trainer.TOOL.check_flags()           # no UsageError
    finally:
        cli.FLAGS.unparse_flags()


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_lists_the_tools_own_flags(tool):
    result = console(tool, "--help")
    assert result.returncode == 0, result.stderr
    module = TOOLS[tool]
    for name in module.TOOL.flag_names:
        assert f"  --{name}" in result.stdout, name
    assert "Try --helpfull" not in result.stdout
    assert result.stdout.startswith(module.__doc__.strip().splitlines()[0])


def test_tool_defaults_win_over_another_tools_definition():
    """--num_clips is defined first by the decoder (default 1); motion's own is 16."""
    cli.FLAGS.unparse_flags()
    try:
        cli.FLAGS(["prog"])
        assert decoder.TOOL.value("num_clips") == 1
        assert motion_main.TOOL.value("num_clips") == 16
        cli.FLAGS(["prog", "--num_clips=3"])
        assert motion_main.TOOL.value("num_clips") == 3
    finally:
        cli.FLAGS.unparse_flags()


def test_tensorflow_start_up_lines_are_quiet_unless_asked(tmp_path):
    """The exporter imports TensorFlow (and probes CUDA) before failing on the missing
    run: stderr is only the error line; --tf_cpp_log brings TF's own lines back."""
    missing = str(tmp_path / "missing")
    want = f"t2t-videoflow-exporter: error: "
    quiet = console("exporter", f"--output_dir={missing}")
    assert quiet.returncode == 1
    assert len(quiet.stderr.splitlines()) == 1 and quiet.stderr.startswith(want)
    loud = console("exporter", f"--output_dir={missing}", "--tf_cpp_log")
    assert loud.returncode == 1 and want in loud.stderr
    # On this project's machines (x86, no GPU) TF prints its oneDNN notice at import.
    if "oneDNN" in loud.stderr or "cuda" in loud.stderr.lower():
        assert len(loud.stderr.splitlines()) > 1
    assert "oneDNN" not in quiet.stderr and "cuInit" not in quiet.stderr


def test_errors_module_imports_nothing_of_the_package():
    """errors.py holds every error class and imports no other package module (nor
    TensorFlow), so any module can raise its errors and any tool can catch them."""
    code = ("import sys, t2t_videoflow.errors as e; "
            "print(sorted(m for m in sys.modules if m.startswith('t2t_videoflow.')), "
            "'tensorflow' in sys.modules, len(e.PACKAGE_ERRORS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "['t2t_videoflow.errors'] False 12"
    from t2t_videoflow import errors
    from t2t_videoflow.serving import saved_model as export_lib
    from t2t_videoflow.config import registry
    from t2t_videoflow.training import run_dir
    assert run_dir.RunDirError is errors.RunDirError
    assert registry.UnknownNameError is errors.UnknownNameError
    assert export_lib.ExportError is errors.ExportError


def test_only_user_errors_become_one_line(capsys):
    """A bad request (package errors, a bad path) is one line and exit code 1; a plain
    ValueError / OSError / KeyError is a bug and keeps its traceback."""
    def raising(error):
        def body():
            raise error
        return body

    for error in (errors.UsageError("--x must be >= 1."), errors.FrameError("bad frames"),
                  errors.CheckpointError("shape"), FileNotFoundError("no such file: f")):
        assert errors.run_cli("t2t-videoflow-x", ["prog"], raising(error)) == 1
        assert capsys.readouterr().err.startswith("t2t-videoflow-x: error: ")
    for bug in (ValueError("internal"), OSError("internal"), KeyError("k"),
                TypeError("t")):
        with pytest.raises(type(bug)):
            errors.run_cli("t2t-videoflow-x", ["prog"], raising(bug))


def test_run_dir_layout_module_does_not_import_the_model():
    code = ("import sys, t2t_videoflow.training.run_dir; "
            "print('t2t_videoflow.model.videoflow' in sys.modules, 'tensorflow_probability' in "
            "sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "False False"


ALLOCATOR_PROBE = (
    "import sys; from t2t_videoflow.cli import tool as cli; cli.use_cpu_allocator(sys.argv[1]); "
    "import tensorflow as tf; x = tf.ones([256, 256]); y = x @ x; "
    "print(tf.config.experimental.get_memory_info('CPU:0')['peak'])")


@pytest.mark.parametrize("kind,preset,pooled", [
    ("bfc", None, True), ("system", None, False), ("system", "0", True)])
def test_cpu_allocator_chooses_where_tensors_live(kind, preset, pooled):
    """`--cpu_allocator` (every tool; applied before TensorFlow is imported): "system"
    takes tensors from malloc, so TF's pool statistics stay at 0, "bfc" is TF's pool.
    A TF_ONEDNN_USE_SYSTEM_ALLOCATOR already in the environment wins."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"}
    if preset is not None:
        env["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] = preset
    out = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE, kind], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert (int(out.split()[-1]) > 0) == pooled


def test_cpu_allocator_flag_is_listed_and_checked():
    for kind in ("pool", "auto"):   # "auto" is resolved by the tool, never applied
        with pytest.raises(ValueError, match=f"Unknown CPU allocator '{kind}'"):
            cli.use_cpu_allocator(kind)
    result = console("trainer", "--help")
    assert result.returncode == 0 and "--cpu_allocator" in result.stdout
    assert "(default: 'auto')" in result.stdout.split("--cpu_allocator")[1]
    bad = console("trainer", "--cpu_allocator=pool", "--data_dir=D", "--output_dir=O")
    assert bad.returncode == 1 and "cpu_allocator" in bad.stderr


def test_auto_cpu_allocator_follows_the_runs_memory_efficient_backprop(tmp_path):
    """--cpu_allocator=auto (the default): "system" for a training run with
    memory_efficient_backprop, from --hparams_set + --hparams or, without
    --hparams_set, from the set recorded in --output_dir; "bfc" where the set cannot
    be known before TensorFlow loads (a user dir's, none recorded, a damaged run.json).
    The hparams are built once (`early_hparams`) for the flag check, the allocator and
    the run itself."""
    from t2t_videoflow.cli.trainer import auto_allocator, early_hparams

    on = "memory_efficient_backprop=true"

    def choice(*args):
        return auto_allocator(early_hparams(*args))
    assert choice("videoflow_tiny", on, None, None) == "system"
    assert choice("videoflow_tiny", "", None, None) == "bfc"
    assert choice("videoflow_tiny", on, "/some/usr_dir", None) == "bfc"
    assert choice(None, on, None, str(tmp_path)) == "bfc"   # no run yet
    (tmp_path / "run.json").write_text('{"hparams_set": "videoflow_tiny"}')
    assert early_hparams(None, on, None, str(tmp_path))[0] == "videoflow_tiny"
    assert choice(None, on, None, str(tmp_path)) == "system"
    assert choice(None, "", None, str(tmp_path)) == "bfc"
    (tmp_path / "run.json").write_text("not json")
    assert choice(None, on, None, str(tmp_path)) == "bfc"
    for bad in (("no_such_set", on), ("videoflow_tiny", "no_such_hparam=1")):
        with pytest.raises(UsageError):
            early_hparams(*bad, None, None)


@pytest.mark.parametrize("overrides,expected", [
    ("memory_efficient_backprop=true", "system"), ("", "bfc")])
def test_trainer_reports_its_cpu_allocator(tmp_path, overrides, expected):
    result = console("trainer", "--problem=stochastic_shapes_16",
                        "--hparams_set=videoflow_tiny", f"--hparams={overrides}",
                        f"--data_dir={tmp_path / 'no_data'}",
                        f"--output_dir={tmp_path / 'run'}", "--schedule=train")
    assert f"CPU allocator {expected} (--cpu_allocator=auto)" in result.stdout, (
        result.stdout + result.stderr)

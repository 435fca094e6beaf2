"""A run dir is data, not code, and owns only itself: its `run.json` never makes a tool
import a user dir, its `checkpoint` state file never makes a resume read or delete
files of other directories, its `hparams.json` is validated like the command line."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from t2t_videoflow.config import registry
from t2t_videoflow.training import run_dir
from t2t_videoflow.training import trainer as trainer_lib
from t2t_videoflow.errors import RunDirError, UsageError

PROBLEM = "stochastic_shapes_tiny"


def write_usr_dir(root, marker):
    """A user package registering problem `trust_probe`; importing it writes `marker`."""
    pkg = os.path.join(root, "probe_usr")
    os.makedirs(pkg)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write(textwrap.dedent(f"""
            open({marker!r}, "w").write("imported")
            from t2t_videoflow.config import registry
            from t2t_videoflow.problems.stochastic_shapes import StochasticShapesTiny

            @registry.register_problem("trust_probe")
            class TrustProbe(StochasticShapesTiny):
                pass
            """))
    return pkg


def run_recording_usr_dir(tmp_path):
    """A run dir whose `run.json` names a user dir (problem defined only there)."""
    marker = str(tmp_path / "code_ran")
    usr = write_usr_dir(str(tmp_path), marker)
    out = str(tmp_path / "shared_run")
    hparams = registry.create_hparams("videoflow_tiny")
    run_dir.save_run(out, hparams, "trust_probe", "videoflow_tiny", usr)
    return out, usr, marker


def test_run_json_user_dir_is_not_imported(tmp_path):
    out, usr, marker = run_recording_usr_dir(tmp_path)
    with pytest.raises(UsageError, match=r"made with --t2t_usr_dir=.*probe_usr; tools never "
                                         r"import a user dir a run dir names"):
        run_dir.resolve_run(out)
    assert not os.path.exists(marker)


def test_decoder_on_a_shared_run_dir_runs_no_code(tmp_path):
    """The real command: one error line, status 1, and the user dir's code never ran."""
    out, usr, marker = run_recording_usr_dir(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "t2t_videoflow.cli.decoder", f"--output_dir={out}",
         f"--data_dir={tmp_path}", "--num_clips=1"],
        capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pass --t2t_usr_dir yourself" in lines[0], result.stderr
    assert not os.path.exists(marker)


def test_named_user_dir_is_imported_and_recorded_absolute(tmp_path, monkeypatch):
    out, usr, marker = run_recording_usr_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    run = run_dir.resolve_run(out, usr_dir="probe_usr")     # relative, as on a command line
    assert os.path.exists(marker)
    assert run.problem.name == "trust_probe" and run.usr_dir == os.path.realpath(usr)


def test_hparams_json_is_validated_on_load(tmp_path):
    out = str(tmp_path / "run")
    run_dir.save_run(out, registry.create_hparams("videoflow_tiny"), PROBLEM, "videoflow_tiny")
    path = run_dir.hparams_path(out)
    for name, value, accepted in [("temperature", -1.0, ">= 0.0"),
                                  ("coupling_width", 200000000, ">= 1 and <= 8192")]:
        with open(path) as f:
            data = json.load(f)
        data["values"][name] = value
        with open(path, "w") as f:
            json.dump(data, f)
        with pytest.raises(RunDirError, match=rf"hparams.json.*'{name}'={value}.*must be "
                                              rf"{accepted}\."):
            run_dir.load_run(out)


@pytest.mark.parametrize("text", ["{", "[1, 2]", '{"problem": 3}', b"\xff\xfe\x00junk"])
def test_damaged_run_json_is_one_error(tmp_path, text):
    out = str(tmp_path / "run")
    run_dir.save_run(out, registry.create_hparams("videoflow_tiny"), PROBLEM, "videoflow_tiny")
    with open(run_dir.run_info_path(out), "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RunDirError, match="run.json"):
        run_dir.load_run(out)


def test_integer_hparams_have_upper_bounds():
    with pytest.raises(ValueError, match=r"'depth'=99999999999999999999.*must be >= 1 and "
                                         r"<= 256"):
        registry.create_hparams("videoflow_tiny", "depth=99999999999999999999")


# -- the checkpoint state file -------------------------------------------------------------

def make_trainer(data_dir, output_dir, train_steps, **config):
    hparams = registry.create_hparams("videoflow_tiny", "", PROBLEM)
    hparams.train_steps = train_steps
    run_dir.save_run(str(output_dir), hparams, PROBLEM, "videoflow_tiny")
    defaults = dict(output_dir=str(output_dir), data_dir=data_dir, train_steps=train_steps,
                    eval_steps=1, save_checkpoints_steps=1, log_every_steps=1,
                    random_seed=3, eval_sample_clips=0)
    defaults.update(config)
    logs = []
    trainer = trainer_lib.Trainer(registry.problem(PROBLEM), hparams,
                                  trainer_lib.TrainConfig(**defaults), log=logs.append)
    trainer.logs = logs
    return trainer


def files(directory):
    return sorted(os.listdir(directory))


def test_crafted_state_file_cannot_delete_or_feed_other_runs(tiny_data_dir, tmp_path):
    """Two other runs' checkpoints, listed by absolute path in a victim run's state file,
    survive a resume with keep_checkpoint_max=1 untouched; the resume reads only its own
    checkpoint, and the state file is rebuilt with one line saying so."""
    others = []
    for name in ("other_a", "other_b"):
        t = make_trainer(tiny_data_dir, tmp_path / name, train_steps=2)
        t.restore_or_initialize()
        t.train()
        others.append(str(tmp_path / name))
    before = {d: {f: os.path.getsize(os.path.join(d, f)) for f in files(d)} for d in others}

    victim = tmp_path / "victim"
    t = make_trainer(tiny_data_dir, victim, train_steps=1)
    t.restore_or_initialize()
    t.train()
    own = run_dir.latest_checkpoint(str(victim))
    assert own.endswith("model.ckpt-1")
    foreign = [os.path.join(d, "model.ckpt-2") for d in others]
    with open(victim / "checkpoint", "w") as f:
        f.write(f'model_checkpoint_path: "{foreign[-1]}"\n')
        for path in foreign + [own]:
            f.write(f'all_model_checkpoint_paths: "{path}"\n')

    resumed = make_trainer(tiny_data_dir, victim, train_steps=3, keep_checkpoint_max=1)
    assert resumed.restore_or_initialize() == 1          # its own ckpt-1, not ckpt-2
    resumed.train()
    assert any("listed 2 checkpoint(s) outside this directory" in line
               and "nothing outside it is read or deleted" in line for line in resumed.logs)
    after = {d: {f: os.path.getsize(os.path.join(d, f)) for f in files(d)} for d in others}
    assert after == before
    assert [p for _, p in run_dir.checkpoints_on_disk(str(victim))] == [
        str(victim / "model.ckpt-3")]


def test_copied_run_dir_resumes_from_its_own_files(tiny_data_dir, tmp_path):
    """A copy of a run dir (its state file holds the original's absolute paths) resumes
    from the copy's checkpoints, and training it leaves the original as it was."""
    original = tmp_path / "original"
    t = make_trainer(tiny_data_dir, original, train_steps=2, keep_checkpoint_max=5)
    t.restore_or_initialize()
    t.train()
    state = (original / "checkpoint").read_text()
    with open(original / "checkpoint", "w") as f:         # as TF writes absolute paths
        f.write(state.replace('"model.ckpt', f'"{original}/model.ckpt'))
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = {f: os.path.getsize(original / f) for f in files(original)}
    resumed = make_trainer(tiny_data_dir, copy, train_steps=4, keep_checkpoint_max=1)
    assert resumed.restore_or_initialize() == 2
    assert resumed.restored_from == str(copy / "model.ckpt-2")
    resumed.train()
    assert {f: os.path.getsize(original / f) for f in files(original)} == before
    assert files(copy).count("model.ckpt-4.index") == 1


def test_missing_or_damaged_state_file_resumes_from_disk(tiny_data_dir, tmp_path):
    """Never silently from scratch: the checkpoints on disk are found without the index,
    whether the state file was deleted or holds garbage."""
    out = tmp_path / "run"
    t = make_trainer(tiny_data_dir, out, train_steps=2)
    t.restore_or_initialize()
    t.train()
    for step, damage in ((2, "delete"), (3, "garbage")):
        if damage == "delete":
            os.remove(out / "checkpoint")
        else:
            (out / "checkpoint").write_bytes(b"\xff\x00\x13not a proto{{")
        resumed = make_trainer(tiny_data_dir, out, train_steps=step + 1)
        assert resumed.restore_or_initialize() == step, damage
        assert any("rebuilt it from the" in line for line in resumed.logs), damage
        resumed.train()
        assert run_dir.latest_checkpoint(str(out)).endswith(f"model.ckpt-{step + 1}")


# -- a checkpoint of other hparams ---------------------------------------------------------

def _decoder(out, checkpoint, frames_dir):
    return subprocess.run(
        [sys.executable, "-m", "t2t_videoflow.cli.decoder", f"--output_dir={out}",
         f"--checkpoint_path={checkpoint}", f"--input_frames={frames_dir}"],
        capture_output=True, text=True, timeout=180)


def test_a_checkpoint_of_other_hparams_is_one_line_naming_both_runs(tmp_path):
    """--checkpoint_path of a deeper model: refused naming both runs and sets (from the
    other run's hparams.json) or, without one, the weights the model lacks; never a
    silent partial load. A shallower model's checkpoint: one short line."""
    import numpy as np
    from PIL import Image
    from inference_testing import make_run_dir
    shallow, deep = str(tmp_path / "shallow"), str(tmp_path / "deep")
    make_run_dir(shallow)
    make_run_dir(deep, overrides="depth=2")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(frames / f"f{i}.png")
    result = _decoder(shallow, os.path.join(deep, "model.ckpt-7"), frames)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"t2t-videoflow-decoder: error: Checkpoint '{deep}/model.ckpt-7' was written by "
        f"the run in '{deep}' (hparams set 'videoflow_tiny'), whose model differs from "
        f"the one built here ('{shallow}', hparams set 'videoflow_tiny'): depth: 2 "
        f"there, 1 here. Pass --output_dir={deep}, or a checkpoint of this run."]
    loose = tmp_path / "loose"                      # the same files, no hparams.json
    loose.mkdir()
    for name in os.listdir(deep):
        if name.startswith("model.ckpt-7."):
            shutil.copy(os.path.join(deep, name), loose / name)
    from t2t_videoflow.errors import CheckpointError
    from t2t_videoflow.training import restore
    with pytest.raises(CheckpointError, match="model weights that the model built from "
                                              "hparams set 'videoflow_tiny' does not have"):
        restore.restore_model(shallow, str(loose / "model.ckpt-7"))
    with pytest.raises(RunDirError, match="depth: 1 there, 2 here"):
        restore.restore_model(deep, os.path.join(shallow, "model.ckpt-7"))
    for name in os.listdir(deep):                   # a shallower model's checkpoint
        if name.startswith("model.ckpt-7."):
            shutil.copy(os.path.join(shallow, name), loose / name)
    with pytest.raises(CheckpointError, match=r"does not fit the model built from these "
                                              r"hparams .*not bound to checkpointed "
                                              r"values, likely due to changes in the "
                                              r"Python program\.$"):
        restore.restore_model(deep, str(loose / "model.ckpt-7"))
    assert not os.path.exists(os.path.join(shallow, "decode"))

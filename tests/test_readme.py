"""The Python examples of README.md and docs/flow.md run as written."""

import os
import re

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
README = os.path.join(ROOT, "README.md")
FLOW_DOC = os.path.join(ROOT, "docs", "flow.md")


def python_blocks(path=README):
    with open(path, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 2


def test_readme_examples_run(capsys, tmp_path, monkeypatch):
    """The first block is self-contained; the others load the quick start's run dir
    `runs/shapes_demo`, here a tiny stand-in written without the trainer."""
    from inference_testing import make_run_dir
    monkeypatch.chdir(tmp_path)
    make_run_dir(str(tmp_path / "runs" / "shapes_demo"), steps=(7,))
    for block in python_blocks():
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "max |decode(encode(x)) - x| =" in out
    error = float(re.search(r"max \|decode\(encode\(x\)\) - x\| = (\S+)", out).group(1))
    assert error < 1e-5
    assert "samples: (2, 3, 16, 16, 3)" in out
    assert "videoflow_tiny stochastic_shapes_tiny step 7" in out
    assert "futures: (2, 2, 16, 16, 3) bits per pixel: (2, 2)" in out


def test_flow_doc_examples_run(capsys):
    blocks = python_blocks(FLOW_DOC)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "docs/flow.md", "exec"), {})
    out = capsys.readouterr().out
    error = float(re.search(r"max \|decode\(encode\(x\)\) - x\| = (\S+)", out).group(1))
    assert error < 1e-5
    assert "sample: (16, 16, 3) log_prob: (2,)" in out


def readme_commands():
    """`(tool, [flag names], {flag: value})` of every t2t-videoflow-* call in bash blocks."""
    with open(README, encoding="utf-8") as f:
        blocks = re.findall(r"```bash\n(.*?)```", f.read(), flags=re.S)
    commands = []
    for block in blocks:
        text = block.replace("\\\n", " ")
        for match in re.finditer(r"(t2t-videoflow-\w+)((?:\s+--[\w]+(?:=\S+)?)*)", text):
            flag_list = re.findall(r"--(\w+)(?:=(\S+))?", match.group(2))
            commands.append((match.group(1), dict(flag_list)))
    return commands


def test_readme_commands_use_real_flags_and_names():
    import importlib
    from t2t_videoflow.cli import tool as cli
    from t2t_videoflow.config import registry
    tools = {"t2t-videoflow-trainer": "trainer", "t2t-videoflow-datagen": "datagen",
             "t2t-videoflow-decoder": "decoder", "t2t-videoflow-exporter": "exporter",
             "t2t-videoflow-motion": "motion", "t2t-videoflow-import": "t2t_import",
             "t2t-videoflow-eval": "evaluate"}
    commands = readme_commands()
    assert any(tool == "t2t-videoflow-trainer" and flags.get("problem") == "stochastic_shapes_16"
               and "generate_data" in flags for tool, flags in commands)
    for tool, flags in commands:
        importlib.import_module(f"t2t_videoflow.cli.{tools[tool]}")
        for name, value in flags.items():
            assert name in cli.FLAGS, f"README: {tool} has no flag --{name}"
            if name == "problem":
                registry.problem_class(value)
            if name == "hparams_set":
                registry.hparams(value)
            if name == "experiment":
                from t2t_videoflow import evaluation
                assert value in evaluation.EXPERIMENTS, f"README: no experiment {value}"

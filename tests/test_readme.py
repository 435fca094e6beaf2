"""The README's Python examples run as written."""

import os
import re

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def python_blocks():
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 2


def test_readme_examples_run(capsys):
    for block in python_blocks():
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "max |decode(encode(x)) - x| =" in out
    error = float(re.search(r"max \|decode\(encode\(x\)\) - x\| = (\S+)", out).group(1))
    assert error < 1e-5
    assert "samples: (2, 3, 16, 16, 3)" in out

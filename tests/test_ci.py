"""The test tiers: the `slow` marker, the names marked from conftest, and .ci/run."""

import importlib
import os
import subprocess
import sys

import conftest

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)


def test_slow_names_marked_from_conftest_exist():
    for node in conftest.SLOW_ELSEWHERE:
        path, name = node.split("[")[0].split("::")
        module = importlib.import_module(os.path.basename(path)[:-3])
        assert callable(getattr(module, name, None)), f"stale SLOW_ELSEWHERE entry {node}"


def test_ci_runs_both_tiers_and_fails_on_either(tmp_path):
    """Runs .ci/run's tier logic with a stand-in `python` whose pytest exits with
    the status given per tier: both tiers run, and any failure (or 'no tests',
    exit 5) fails CI."""
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        script = f.read()
    assert 'python -m pytest -q tests -m "$marks" --durations=15' in script
    body = script[script.index("tier() {"):]          # skip the venv and install steps
    fake = tmp_path / "python"
    fake.write_text('#!/usr/bin/env bash\necho "$@" >> "$LOG"\n'
                    'case "$*" in *"not slow"*) exit "$FAST" ;; *) exit "$SLOW" ;; esac\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    for fast, slow, want in ((0, 0, 0), (1, 0, 1), (0, 1, 1), (5, 0, 1), (0, 5, 1)):
        log = tmp_path / f"log_{fast}_{slow}"
        result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + body],
                                env=dict(env, LOG=str(log), FAST=str(fast),
                                         SLOW=str(slow)),
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == want, (fast, slow, result.stdout, result.stderr)
        calls = log.read_text().splitlines()
        assert len(calls) == 2 and "not slow" in calls[0] and calls[1].endswith(
            "-m slow --durations=15"), calls


def test_marker_is_registered():
    out = subprocess.run([sys.executable, "-m", "pytest", "--markers"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    assert "@pytest.mark.slow:" in out

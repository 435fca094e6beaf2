"""The `t2t_videoflow.hparams` and `t2t_videoflow.problems` docstrings name every
registered hparams set and problem (and alias), so they cannot go stale."""

import pytest

import t2t_videoflow.hparams
import t2t_videoflow.problems
from t2t_videoflow.config import registry


@pytest.mark.parametrize("module, names", [
    (t2t_videoflow.hparams, registry.list_hparams),
    (t2t_videoflow.problems, lambda: registry.list_problems(include_aliases=True)),
], ids=["hparams", "problems"])
def test_the_package_docstring_names_every_registered_name(module, names):
    registered = names()
    assert registered                       # the built-ins are registered
    missing = [name for name in registered if f"`{name}`" not in module.__doc__]
    assert missing == [], f"{module.__name__} docstring omits {missing}"

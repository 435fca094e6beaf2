"""The `t2t_videoflow.hparams` and `t2t_videoflow.problems` docstrings name every
built-in hparams set and problem (and alias), so they cannot go stale. Names that
other tests or user dirs register in this process are left out."""

import t2t_videoflow.hparams
import t2t_videoflow.problems
from t2t_videoflow.config import registry


def built_in_hparams():
    return [name for name in registry.list_hparams()
            if registry._HPARAMS[name].__module__.startswith("t2t_videoflow.hparams")]


def built_in_problems():
    names = []
    for name in registry.list_problems(include_aliases=True):
        cls = registry.problem_class(name)
        if cls.__module__.startswith("t2t_videoflow.problems"):
            names.append(name)
    return names


def missing_from(module, names):
    return [name for name in names if f"`{name}`" not in module.__doc__]


def test_the_hparams_docstring_names_every_built_in_set():
    names = built_in_hparams()
    assert "videoflow_bpp" in names and "videoflow_shapes16_demo" in names
    assert missing_from(t2t_videoflow.hparams, names) == []


def test_the_problems_docstring_names_every_built_in_problem_and_alias():
    names = built_in_problems()
    assert "bair_action_free" in names and "video_bair_robot_pushing" in names
    assert missing_from(t2t_videoflow.problems, names) == []


def test_a_registered_user_name_is_not_required():
    @registry.register_hparams("docstring_probe_set")
    def docstring_probe_set():
        return registry.hparams("videoflow_tiny")
    try:
        assert "docstring_probe_set" in registry.list_hparams()
        assert "docstring_probe_set" not in built_in_hparams()
    finally:
        del registry._HPARAMS["docstring_probe_set"]

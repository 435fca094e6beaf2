"""Problem and hparams registries, and --t2t_usr_dir imports."""

import textwrap
import uuid

import pytest

from t2t_videoflow.config import registry
from t2t_videoflow.config.hparams_lib import HParams, HParamsError
from t2t_videoflow.config.usr_dir import UsrDirError, import_usr_dir


def test_builtin_names():
    # Other tests may register more names in this process; the built-ins are always there.
    assert {"bair_action_free", "stochastic_shapes", "stochastic_shapes_32",
            "stochastic_shapes_tiny"} <= set(registry.list_problems())
    assert registry.problem_aliases().items() >= {
        "video_stochastic_shapes10k": "stochastic_shapes",
        "video_bair_robot_pushing": "bair_action_free"}.items()
    assert "video_bair_robot_pushing" not in registry.list_problems()
    assert "video_bair_robot_pushing" in registry.list_problems(include_aliases=True)
    assert {"next_frame_glow_hparams", "next_frame_glow_bair_quant", "next_frame_glow_bair_qual",
            "next_frame_glow_shapes", "frame_glow_hparams", "videoflow_bpp", "videoflow_qual",
            "videoflow_shapes_cpu", "videoflow_tiny"} <= set(registry.list_hparams())
    assert registry.problem("video_bair_robot_pushing").name == "bair_action_free"
    assert isinstance(registry.hparams("videoflow_bpp"), HParams)


def test_unknown_names_list_known_and_closest():
    with pytest.raises(registry.UnknownNameError) as e:
        registry.problem("stochastic_shape")
    msg = str(e.value)
    assert "Unknown problem 'stochastic_shape'. Did you mean 'stochastic_shapes'?" in msg
    assert "bair_action_free" in msg and "video_stochastic_shapes10k" in msg
    with pytest.raises(KeyError, match=r"Unknown hparams set 'videoflow_bbp'\. Did you mean "
                                       r"'videoflow_bpp'\?.*next_frame_glow_shapes"):
        registry.hparams("videoflow_bbp")
    with pytest.raises(KeyError, match=r"Known hparams sets: .*frame_glow_hparams"):
        registry.hparams("zzzzzz")


def test_register_and_duplicates():
    name = f"test_set_{uuid.uuid4().hex[:8]}"

    @registry.register_hparams(name)
    def _my_set():
        hp = registry.hparams("videoflow_tiny")
        hp.depth = 3
        return hp

    assert name in registry.list_hparams() and registry.hparams(name).depth == 3
    with pytest.raises(registry.RegistrationError, match="already registered"):
        registry.register_hparams(name)(_my_set)

    pname = f"test_problem_{uuid.uuid4().hex[:8]}"

    @registry.register_problem(pname, aliases=(pname + "_alias",))
    class _MyProblem(registry.problem_class("stochastic_shapes_tiny")):
        pass

    assert registry.problem(pname + "_alias").name == pname
    with pytest.raises(registry.RegistrationError, match=f"{pname}_alias.*already registered"):
        registry.register_problem(pname + "_other", aliases=(pname + "_alias",))(_MyProblem)

    bad = f"test_bad_{uuid.uuid4().hex[:8]}"
    registry.register_hparams(bad)(lambda: {"depth": 1})
    with pytest.raises(registry.RegistrationError, match="not HParams"):
        registry.hparams(bad)


def test_create_hparams_overrides_and_checks():
    hp = registry.create_hparams("videoflow_bpp", "depth=2,latent_dilation_rates=[1,2]",
                                 problem_name="bair_action_free")
    assert hp.depth == 2 and hp.latent_dilation_rates == [1, 2]
    with pytest.raises(HParamsError, match="Unknown hparam 'detph'"):
        registry.create_hparams("videoflow_bpp", "detph=2")
    with pytest.raises(ValueError, match="64x64x3 frames but problem 'stochastic_shapes_tiny'"):
        registry.create_hparams("videoflow_bpp", problem_name="stochastic_shapes_tiny")


def _write_usr_package(root, tag):
    pkg = root / f"usr_{tag}"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import my_defs  # noqa\n")
    (pkg / "my_defs.py").write_text(textwrap.dedent(f"""
        from t2t_videoflow.config import registry
        from t2t_videoflow.problems.stochastic_shapes import StochasticShapesTiny

        @registry.register_problem("user_shapes_{tag}")
        class UserShapes(StochasticShapesTiny):
            file_prefix = "user_shapes_{tag}"
            num_videos = 9
            num_shards = {{"train": 2, "dev": 1}}

        @registry.register_hparams
        def user_set_{tag}():
            hp = registry.hparams("videoflow_tiny")
            hp.batch_size = 3
            return hp
    """))
    return pkg


def test_usr_dir_registers_and_is_idempotent(tmp_path):
    tag = uuid.uuid4().hex[:8]
    pkg = _write_usr_package(tmp_path, tag)
    import_usr_dir(str(pkg))
    import_usr_dir(str(pkg))            # a second import does not re-register
    assert f"user_shapes_{tag}" in registry.list_problems()
    assert registry.problem(f"user_shapes_{tag}").num_videos == 9
    assert registry.hparams(f"user_set_{tag}").batch_size == 3
    with pytest.raises(UsrDirError, match="does not exist"):
        import_usr_dir(str(tmp_path / "missing"))
    (tmp_path / "not_a_pkg").mkdir()
    with pytest.raises(UsrDirError, match="no __init__.py"):
        import_usr_dir(str(tmp_path / "not_a_pkg"))
    broken = tmp_path / f"broken_{tag}"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(UsrDirError, match="import failed: RuntimeError: boom"):
        import_usr_dir(str(broken))
    single = tmp_path / f"single_{tag}.py"
    single.write_text("from t2t_videoflow.config import registry\n"
                      f"registry.register_hparams('single_{tag}')("
                      "lambda: registry.hparams('videoflow_tiny'))\n")
    import_usr_dir(str(single))
    assert f"single_{tag}" in registry.list_hparams()

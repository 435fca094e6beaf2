"""Typed HParams: attribute access, parse overrides, type checks, JSON round trip."""

import pytest

from t2t_videoflow.config.hparams_lib import HParams, HParamsError


def _hp():
    return HParams(depth=24, coupling="affine", learning_rate=3e-4, latent_skip=True,
                   latent_dilation_rates=[1, 3], clip_grad_norm=0.0)


def test_attribute_access_and_types():
    hp = _hp()
    assert hp.depth == 24 and hp.coupling == "affine" and hp.latent_dilation_rates == [1, 3]
    assert [hp.type_of(k) for k in ("depth", "coupling", "learning_rate", "latent_skip",
                                    "latent_dilation_rates")] == [
        "int", "str", "float", "bool", "list[int]"]
    hp.depth = 8
    hp.learning_rate = 1          # an int is accepted by a float field, stored as float
    assert hp.depth == 8 and hp.learning_rate == 1.0 and isinstance(hp.learning_rate, float)
    with pytest.raises(HParamsError, match=r"'depth' has type int, got 2\.5"):
        hp.depth = 2.5
    with pytest.raises(HParamsError, match=r"'latent_skip' has type bool, got 1"):
        hp.latent_skip = 1
    with pytest.raises(AttributeError, match=r"Unknown hparam 'dept'; did you mean 'depth'\?"):
        hp.dept = 3
    with pytest.raises(AttributeError, match=r"Unknown hparam 'coupling_widht'"):
        _ = hp.coupling_widht
    # The returned list is a copy: mutating it does not change the hparams.
    hp.latent_dilation_rates.append(9)
    assert hp.latent_dilation_rates == [1, 3]


def test_parse_overrides():
    hp = _hp().parse("depth=1, coupling=additive,latent_dilation_rates=[1,2, 4],"
                     "latent_skip=false,learning_rate=1e-3,clip_grad_norm=2")
    assert hp.depth == 1 and hp.coupling == "additive"
    assert hp.latent_dilation_rates == [1, 2, 4] and hp.latent_skip is False
    assert hp.learning_rate == 1e-3 and hp.clip_grad_norm == 2.0
    assert _hp().parse("coupling='additive'").coupling == "additive"
    assert _hp().parse("latent_dilation_rates=[]").latent_dilation_rates == []
    assert _hp().parse("") == _hp()


@pytest.mark.parametrize("text,pattern", [
    ("dpeth=3", r"Unknown hparam 'dpeth'; did you mean 'depth'\?"),
    ("depth=2.5", r"'depth' has type int, cannot parse '2\.5'"),
    ("depth=abc", r"'depth' has type int"),
    ("latent_skip=yes", r"'latent_skip' has type bool"),
    ("learning_rate=fast", r"'learning_rate' has type float"),
    ("latent_dilation_rates=3", r"'latent_dilation_rates' has type list\[int\]; write it as"),
    ("latent_dilation_rates=[1,x]", r"'latent_dilation_rates' has type int, cannot parse 'x'"),
    ("latent_dilation_rates=[1,,3]", r"'latent_dilation_rates': empty list element"),
    ("depth=[1]", r"'depth' has type int, got a list"),
    ("depth", r"Malformed hparams string .*'depth' is not name=value"),
    ("depth=1,b=[1,3", r"unbalanced '\['"),
    ("depth=1]", r"unbalanced '\]'"),
    ("depth=", r"'depth' has an empty value"),
    ("depth=1,depth=2", r"'depth' is given more than once"),
    ("1x=3", r"bad name '1x'"),
    ("depth=1,,latent_skip=true", r"empty element between commas"),
    ("depth=1,", r"empty element between commas"),
])
def test_parse_errors_name_the_key(text, pattern):
    hp = _hp()
    with pytest.raises(HParamsError, match=pattern):
        hp.parse("coupling=additive," + text)
    assert hp == _hp()        # nothing applied when any pair is bad


def test_json_round_trip(tmp_path):
    hp = _hp()
    hp.add_hparam("empty_list", [], dtype="list[float]")
    hp.add_hparam("whole_float", 2.0)
    again = HParams.from_json(hp.to_json())
    assert again == hp and again.type_of("whole_float") == "float"
    assert again.type_of("empty_list") == "list[float]"
    path = str(tmp_path / "hparams.json")
    hp.save(path)
    loaded = HParams.load(path)
    assert loaded == hp and loaded.values() == hp.values()
    loaded.parse("empty_list=[0.5,1]")
    assert loaded.empty_list == [0.5, 1.0]
    # A plain {name: value} object is accepted too (types inferred).
    assert HParams.from_json('{"depth": 3, "lr": 0.1}').type_of("lr") == "float"
    with pytest.raises(HParamsError, match="does not parse"):
        HParams.from_json("{depth: 3")
    with pytest.raises(HParamsError, match="does not exist"):
        HParams.load(str(tmp_path / "missing.json"))


def test_add_hparam_rules():
    hp = _hp()
    with pytest.raises(HParamsError, match="already exists"):
        hp.add_hparam("depth", 3)
    with pytest.raises(HParamsError, match="clashes with an HParams method"):
        hp.add_hparam("parse", 3)
    with pytest.raises(HParamsError, match="empty list"):
        hp.add_hparam("rates", [])
    with pytest.raises(HParamsError, match="one scalar type"):
        hp.add_hparam("mixed", [1, "a"])
    with pytest.raises(HParamsError, match="Unsupported hparam value"):
        hp.add_hparam("nothing", None)
    hp.add_hparam("floats", [1, 2.5])
    assert hp.type_of("floats") == "list[float]" and hp.floats == [1.0, 2.5]
    copy = hp.copy()
    copy.depth = 1
    assert hp.depth == 24
    with pytest.raises(HParamsError, match=r"Unknown hparam 'x'"):
        hp.override_from_dict({"depth": 2, "x": 1})
    assert hp.depth == 24


# -- validation of resolved sets ---------------------------------------------------------

def _resolve(overrides, set_name="videoflow_tiny"):
    from t2t_videoflow.config import registry
    return registry.create_hparams(set_name, overrides)


@pytest.mark.parametrize("override,pattern", [
    ("temperature=-1", r"'temperature'=-1\.0 .*must be >= 0\.0"),
    ("temperature=inf", r"'temperature'=inf .*must be finite"),
    ("depth=0", r"'depth'=0 .*must be >= 1"),
    ("batch_size=-2", r"'batch_size'=-2 .*must be >= 1"),
    ("coupling_dropout=1.0", r"'coupling_dropout'=1\.0 .*must be >= 0\.0 and < 1\.0"),
    ("optimizer_adam_epsilon=0", r"'optimizer_adam_epsilon'=0\.0 .*must be > 0\.0"),
    ("coupling=volume", r"'coupling'='volume' .*must be one of affine, additive"),
    ("learning_rate_schedule=cosine", r"'learning_rate_schedule'='cosine'"),
    ("num_train_frames=0", r"'num_train_frames'=0 .*-1 \(the whole clip\) or >= 1"),
    ("latent_dilation_rates=[1,0]", r"'latent_dilation_rates'=\[1, 0\]"),
    ("weight_decay=1e-6", r"'weight_decay'=1e-06 .*not used by this port; only T2T's "
                          r"default 0\.0 is accepted"),
    ("optimizer=sgd", r"'optimizer'='sgd' .*only T2T's default 'adam'"),
    ("initializer=glorot", r"'initializer'='glorot'"),
    ("initializer_gain=1.0", r"'initializer_gain'=1\.0"),
    ("n_bits_x=9", r"'n_bits_x'=9 .*must be >= 1 and <= 8"),
    ("n_bits_x=0", r"'n_bits_x'=0 .*must be >= 1 and <= 8"),
    ("learning_rate_decay_scheme=noam", r"'learning_rate_decay_scheme'='noam'"),
    ("model_input=true", r"'model_input'=True"),
])
def test_resolved_hparams_are_validated(override, pattern):
    with pytest.raises(HParamsError, match=pattern):
        _resolve(override)


def test_unused_hparams_at_t2t_default_and_every_set_pass():
    from t2t_videoflow.config import registry
    from t2t_videoflow.config.hparams_lib import UNUSED_AT_T2T_DEFAULT, validate
    _resolve("weight_decay=0.0,optimizer=adam,initializer_gain=1.5,n_bits_x=4")
    built_in = [name for name in registry.list_hparams()       # not the tests' own sets
                if registry._HPARAMS[name].__module__.startswith("t2t_videoflow.hparams")]
    assert "videoflow_bpp" in built_in and "videoflow_shapes16_demo" in built_in
    for name in built_in:
        validate(registry.hparams(name), name)
    base = registry.hparams("next_frame_glow_hparams")
    assert {k: base.get(k) for k in UNUSED_AT_T2T_DEFAULT} == UNUSED_AT_T2T_DEFAULT


def test_choice_tables_match_the_model():
    from t2t_videoflow.model import videoflow as model
    from t2t_videoflow.training import schedules
    from t2t_videoflow.flow import coupling
    from t2t_videoflow.config.hparams_lib import CHOICES
    from t2t_videoflow.layers import coupling_network
    from t2t_videoflow.prior import latent_prior, latent_to_dist, pointwise
    assert set(CHOICES["coupling"]) == set(coupling.COUPLINGS)
    assert set(CHOICES["activation"]) == set(coupling_network.ACTIVATIONS)
    assert set(CHOICES["top_prior"]) == set(model.TOP_PRIORS)
    assert set(CHOICES["gen_mode"]) == set(model.GEN_MODES)
    assert set(CHOICES["level_scale"]) == set(pointwise.LEVEL_SCALES)
    assert set(CHOICES["latent_dist_encoder"]) == set(latent_prior.ENCODERS)
    assert set(CHOICES["latent_architecture"]) == set(latent_to_dist.ARCHITECTURES)
    assert set(CHOICES["learning_rate_schedule"]) == set(schedules.SCHEDULES)

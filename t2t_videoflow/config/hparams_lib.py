"""Typed hyperparameters: a small, strict replacement for T2T's `HParams`.

Every field has a fixed type, set when the field is added (from the first value,
or given explicitly). Assigning or overriding a field checks the new value against
that type, and reading or writing an unknown field fails with the closest known
name. Supported types: `bool`, `int`, `float`, `str` and lists of one of those
(`list[int]` and so on). A float field accepts an int (it is stored as a float);
nothing else is converted silently.

    hp = HParams(depth=24, coupling="affine", latent_dilation_rates=[1, 3])
    hp.parse("depth=8,coupling=additive,latent_dilation_rates=[1,2,3]")
    hp.depth            # 8
    HParams.from_json(hp.to_json()) == hp   # True

Override strings (`parse`) are comma-separated `name=value` pairs; a list value is
written in brackets, `name=[1,3]`; a string value may be quoted. Booleans accept
`true/false` (any case) and `1/0`.

Model code reads hyperparameters only by attribute (`hparams.coupling_width`) and
never writes them.
"""

import difflib
import json
import math
import re

from t2t_videoflow.errors import HParamsError

_SCALAR_TYPES = {"bool": bool, "int": int, "float": float, "str": str}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def closest_name(name, known):
    """Returns the known name closest to `name`, or None."""
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return matches[0] if matches else None


def _unknown_field_message(name, known):
    hint = closest_name(name, known)
    msg = f"Unknown hparam {name!r}"
    if hint:
        msg += f"; did you mean {hint!r}?"
    return msg + f" Known hparams: {', '.join(sorted(known))}."


def _type_name(value):
    """The type name (`int`, `list[float]`, ...) of a Python value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        if not value:
            raise HParamsError("Cannot infer the type of an empty list; give dtype= explicitly.")
        names = {_type_name(v) for v in value}
        if names == {"int", "float"}:
            names = {"float"}
        if len(names) != 1 or next(iter(names)).startswith("list"):
            raise HParamsError(f"A list hparam must hold one scalar type, got {value!r}.")
        return f"list[{names.pop()}]"
    raise HParamsError(f"Unsupported hparam value {value!r} of type {type(value).__name__}.")


def _normalize_type_name(dtype):
    if isinstance(dtype, type):
        for name, cls in _SCALAR_TYPES.items():
            if dtype is cls:
                return name
        raise HParamsError(f"Unsupported hparam type {dtype!r}.")
    name = str(dtype).replace(" ", "")
    if name in _SCALAR_TYPES:
        return name
    if name.startswith("list[") and name.endswith("]") and name[5:-1] in _SCALAR_TYPES:
        return name
    raise HParamsError(f"Unsupported hparam type {dtype!r}.")


def _coerce_scalar(key, value, scalar):
    """Checks a Python value against a scalar type name; returns the stored value."""
    if scalar == "bool":
        if isinstance(value, bool):
            return value
    elif scalar == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif scalar == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif scalar == "str":
        if isinstance(value, str):
            return value
    raise HParamsError(
        f"Hparam {key!r} has type {scalar}, got {value!r} ({type(value).__name__}).")


def _coerce(key, value, type_name):
    if type_name.startswith("list["):
        if not isinstance(value, (list, tuple)):
            raise HParamsError(
                f"Hparam {key!r} has type {type_name}, got {value!r} ({type(value).__name__}).")
        return [_coerce_scalar(key, v, type_name[5:-1]) for v in value]
    return _coerce_scalar(key, value, type_name)


def _parse_scalar_string(key, text, scalar):
    """Parses one override token into a value of the scalar type."""
    text = text.strip()
    if scalar == "str":
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1]
        return text
    if scalar == "bool":
        low = text.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise HParamsError(f"Hparam {key!r} has type bool, cannot parse {text!r} "
                           "(use true/false).")
    if scalar == "int":
        try:
            return int(text, 10)
        except ValueError:
            raise HParamsError(f"Hparam {key!r} has type int, cannot parse {text!r}.") from None
    try:
        return float(text)
    except ValueError:
        raise HParamsError(f"Hparam {key!r} has type float, cannot parse {text!r}.") from None


def _split_overrides(text):
    """Splits `a=1,b=[1,3],c=x` into [('a','1'), ('b','[1,3]'), ('c','x')]."""
    pairs, depth, start = [], 0, 0
    pieces = []
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise HParamsError(f"Malformed hparams string {text!r}: unbalanced ']'.")
        elif ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise HParamsError(f"Malformed hparams string {text!r}: unbalanced '['.")
    pieces.append(text[start:])
    if len(pieces) > 1 and any(not piece.strip() for piece in pieces):
        raise HParamsError(f"Malformed hparams string {text!r}: empty element between "
                           "commas.")
    for piece in pieces:
        if not piece.strip():
            continue
        if "=" not in piece:
            raise HParamsError(
                f"Malformed hparams string {text!r}: {piece.strip()!r} is not name=value.")
        key, value = piece.split("=", 1)
        key = key.strip()
        if not _NAME_RE.match(key):
            raise HParamsError(f"Malformed hparams string {text!r}: bad name {key!r}.")
        pairs.append((key, value.strip()))
    return pairs


class HParams:
    """Typed, attribute-accessed hyperparameters.

    Args:
      **values: initial fields; each field's type is inferred from its value.

    Raises:
      HParamsError: on an unsupported value (e.g. an empty list without `add_hparam`'s
        `dtype`), and later on unknown names or wrong types.
    """

    def __init__(self, **values):
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_types", {})
        for key, value in values.items():
            self.add_hparam(key, value)

    # -- fields -------------------------------------------------------------------
    def add_hparam(self, name, value, dtype=None):
        """Adds a new field. `dtype` (e.g. `float`, `"list[int]"`) defaults to the value's."""
        if not _NAME_RE.match(name) or name.startswith("_"):
            raise HParamsError(f"Bad hparam name {name!r}.")
        if name in self._values:
            raise HParamsError(f"Hparam {name!r} already exists; assign it instead.")
        if hasattr(type(self), name):
            raise HParamsError(f"Hparam name {name!r} clashes with an HParams method.")
        type_name = _normalize_type_name(dtype) if dtype is not None else _type_name(value)
        self._values[name] = _coerce(name, value, type_name)
        self._types[name] = type_name

    def set_hparam(self, name, value):
        """Sets an existing field, checking the type."""
        if name not in self._values:
            raise HParamsError(_unknown_field_message(name, self._values))
        self._values[name] = _coerce(name, value, self._types[name])

    def type_of(self, name):
        """The type name of a field, e.g. `"int"` or `"list[int]"`."""
        if name not in self._types:
            raise HParamsError(_unknown_field_message(name, self._types))
        return self._types[name]

    def __getattr__(self, name):
        # Only called when normal lookup fails.
        if name.startswith("__"):
            raise AttributeError(name)
        values = object.__getattribute__(self, "_values")
        if name in values:
            value = values[name]
            return list(value) if isinstance(value, list) else value
        raise AttributeError(_unknown_field_message(name, values))

    def __setattr__(self, name, value):
        if name not in self._values:
            raise AttributeError(
                _unknown_field_message(name, self._values)
                + " Use add_hparam() to add a new field.")
        self.set_hparam(name, value)

    def __contains__(self, name):
        return name in self._values

    def get(self, name, default=None):
        return self.__getattr__(name) if name in self._values else default

    def values(self):
        """A plain dict copy of all fields."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._values.items()}

    def copy(self):
        new = HParams()
        for key, value in self._values.items():
            new.add_hparam(key, value, dtype=self._types[key])
        return new

    def __eq__(self, other):
        return (isinstance(other, HParams) and self._values == other._values
                and self._types == other._types)

    def __repr__(self):
        body = ", ".join(f"{k}={v!r}" for k, v in sorted(self._values.items()))
        return f"HParams({body})"

    # -- overrides ------------------------------------------------------------------
    def parse(self, overrides):
        """Applies `name=value,...` overrides in place and returns self.

        All pairs are checked before any is applied, so a bad string leaves the
        object unchanged.

        Raises:
          HParamsError: malformed string, unknown name (with the closest match), a
            value that does not parse as the field's type, or a repeated name.
        """
        if not overrides or not overrides.strip():
            return self
        updates = {}
        for key, text in _split_overrides(overrides):
            if key not in self._values:
                raise HParamsError(_unknown_field_message(key, self._values))
            if key in updates:
                raise HParamsError(f"Hparam {key!r} is given more than once in {overrides!r}.")
            type_name = self._types[key]
            if type_name.startswith("list["):
                if not (text.startswith("[") and text.endswith("]")):
                    raise HParamsError(
                        f"Hparam {key!r} has type {type_name}; write it as {key}=[a,b,...], "
                        f"got {text!r}.")
                inner = text[1:-1].strip()
                items = [t for t in inner.split(",")] if inner else []
                if any(not t.strip() for t in items):
                    raise HParamsError(f"Hparam {key!r}: empty list element in {text!r}.")
                updates[key] = [_parse_scalar_string(key, t, type_name[5:-1]) for t in items]
            else:
                if text.startswith("["):
                    raise HParamsError(f"Hparam {key!r} has type {type_name}, got a list {text!r}.")
                if text == "":
                    raise HParamsError(f"Hparam {key!r} has an empty value.")
                updates[key] = _parse_scalar_string(key, text, type_name)
        for key, value in updates.items():
            self.set_hparam(key, value)
        return self

    def override_from_dict(self, values):
        """Sets several existing fields from a dict (type-checked); returns self."""
        for key in values:
            if key not in self._values:
                raise HParamsError(_unknown_field_message(key, self._values))
        for key, value in values.items():
            self.set_hparam(key, value)
        return self

    # -- serialisation -----------------------------------------------------------------
    def to_json(self, indent=2):
        """JSON with the values and their types, so a reload is exact."""
        return json.dumps({"values": self._values, "types": self._types},
                          indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """Inverse of `to_json`. Also accepts a plain `{name: value}` object."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise HParamsError(f"Hparams JSON does not parse: {e}") from None
        if not isinstance(data, dict):
            raise HParamsError("Hparams JSON must be an object.")
        if set(data) == {"values", "types"}:
            values, types = data["values"], data["types"]
            if set(values) != set(types):
                raise HParamsError("Hparams JSON: 'values' and 'types' have different keys.")
        else:
            values, types = data, {}
        hp = cls()
        for key in sorted(values):
            hp.add_hparam(key, values[key], dtype=types.get(key))
        return hp

    def save(self, path):
        """Writes `to_json()` to `path` (a local path or any `tf.io.gfile` URL)."""
        import tensorflow as tf  # Imported lazily: the class itself needs no TF.
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path):
        import tensorflow as tf
        if not tf.io.gfile.exists(path):
            raise HParamsError(f"Hparams file {path} does not exist.")
        with tf.io.gfile.GFile(path, "r") as f:
            return cls.from_json(f.read())


# -- validation -------------------------------------------------------------------------
# What the model, the trainer and the problems accept for each hparam of the VideoFlow
# sets. The name tables repeat the model's (`tests/test_hparams_lib.py` checks they
# agree) so that checking needs no TensorFlow.
CHOICES = {
    "coupling": ("affine", "additive"),                          # flow/coupling.COUPLINGS
    "activation": ("relu", "gatu"),                              # layers/coupling_network
    "latent_activation": ("relu", "gatu"),
    "top_prior": ("single_conv", "normal"),                      # model.TOP_PRIORS
    "gen_mode": ("conditional", "unconditional"),                # model.GEN_MODES
    "level_scale": ("prev_level", "prev_step", "normal"),        # prior/pointwise
    "latent_dist_encoder": ("conv3d_net", "conv_net", "conv_lstm", "pointwise"),
    "latent_architecture": ("single_conv", "glow_nn", "glow_resnet"),
    "learning_rate_schedule": ("legacy", "constant*linear_warmup",  # schedules.SCHEDULES
                               "constant*linear_warmup*linear_decay"),
    "network_dtype": ("float32", "bfloat16"),         # layers/coupling_network.COMPUTE_DTYPES
}

# (low, high, low_inclusive, high_inclusive); None = unbounded. Ints and floats.
# Every integer that sizes a tensor or a loop has an upper bound far above any
# published setting (paper E.1: 3 levels x 24 steps, 512 channels, 64x64 frames),
# so a typo such as depth=99999999 is one error line instead of an out-of-memory
# crash; raise a bound here if a real experiment needs more.
_INF = float("inf")
RANGES = {
    "n_levels": (1, 8, True, True),
    "depth": (1, 256, True, True),
    "coupling_width": (1, 8_192, True, True),
    "coupling_dropout": (0.0, 1.0, True, False),
    "init_batch_size": (1, 4_096, True, True),
    "temperature": (0.0, None, True, True),
    "batch_size": (1, 4_096, True, True),
    "learning_rate_constant": (0.0, None, True, True),
    "clip_grad_norm": (0.0, None, True, True),
    "learning_rate": (0.0, None, True, True),
    "learning_rate_warmup_steps": (0, 1_000_000_000, True, True),
    "learning_rate_decay_steps": (0, 1_000_000_000, True, True),
    "optimizer_adam_beta1": (0.0, 1.0, True, False),
    "optimizer_adam_beta2": (0.0, 1.0, True, False),
    "optimizer_adam_epsilon": (0.0, None, False, True),
    "video_num_input_frames": (1, 512, True, True),
    "video_num_target_frames": (1, 512, True, True),
    "num_cond_latents": (1, 64, True, True),
    "latent_encoder_depth": (1, 128, True, True),
    "latent_encoder_width": (1, 8_192, True, True),
    "latent_dropout": (0.0, 1.0, True, False),
    "latent_pre_output_channels": (1, 8_192, True, True),
    "latent_noise": (0.0, None, True, True),
    "pretrain_steps": (-1, 1_000_000_000, True, True),
    "frame_height": (1, 2_048, True, True),
    "frame_width": (1, 2_048, True, True),
    "frame_channels": (1, 4, True, True),
    "train_steps": (1, 1_000_000_000, True, True),
    "n_bits_x": (1, 8, True, True),
    "weight_ema_decay": (0.0, 1.0, True, False),
}

# Hparams of T2T's sets that no code of this port reads: only T2T's value is accepted,
# so a run never records a setting that had no effect (docs/t2t.md, Dequantisation
# and Hparams sets).
UNUSED_AT_T2T_DEFAULT = {
    "weight_decay": 0.0,                  # glow_hparams; no weight decay is applied
    "optimizer": "adam",                  # Adam (beta1/beta2/epsilon are read)
    "initializer": "orthogonal",          # variables get their own initialisers + DDI
    "initializer_gain": 1.5,
    "learning_rate_decay_scheme": "none",  # decay comes from learning_rate_schedule
    "condition_all_levels": True,         # unused anywhere in T2T either
    "model_input": False,                 # scoring the context frames: not ported
}


def _in_range(value, bounds):
    low, high, low_incl, high_incl = bounds
    if low is not None and (value < low or (value == low and not low_incl)):
        return False
    if high is not None and (value > high or (value == high and not high_incl)):
        return False
    return True


def _range_text(bounds):
    low, high, low_incl, high_incl = bounds
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_incl else '>'} {low}")
    if high is not None:
        parts.append(f"{'<=' if high_incl else '<'} {high}")
    return " and ".join(parts)


def validate(hparams, set_name=None):
    """Checks every known hparam's value; fields this table does not know are skipped.

    Run once where a set and its overrides are resolved (`registry.create_hparams`),
    before anything is written, so a bad value never reaches `hparams.json`.

    Raises:
      HParamsError naming the first bad hparam, its value and what is accepted.
    """
    where = f" (hparams set {set_name!r})" if set_name else ""
    values = hparams.values()
    for name, value in values.items():
        if name in UNUSED_AT_T2T_DEFAULT:
            default = UNUSED_AT_T2T_DEFAULT[name]
            if value != default:
                raise HParamsError(
                    f"Hparam {name!r}={value!r}{where} is not used by this port; only "
                    f"T2T's default {default!r} is accepted.")
        elif name in CHOICES:
            if value not in CHOICES[name]:
                raise HParamsError(f"Hparam {name!r}={value!r}{where} must be one of "
                                   f"{', '.join(CHOICES[name])}.")
        elif name in RANGES:
            if isinstance(value, float) and not math.isfinite(value):
                raise HParamsError(f"Hparam {name!r}={value!r}{where} must be finite.")
            if not _in_range(value, RANGES[name]):
                raise HParamsError(f"Hparam {name!r}={value!r}{where} must be "
                                   f"{_range_text(RANGES[name])}.")
    if "num_train_frames" in values:
        ntf = values["num_train_frames"]
        if ntf != -1 and ntf < 1:
            raise HParamsError(f"Hparam 'num_train_frames'={ntf}{where} must be -1 (the "
                               "whole clip) or >= 1.")
    for rate in values.get("latent_dilation_rates", []):
        if rate < 1:
            raise HParamsError(f"Hparam 'latent_dilation_rates'="
                               f"{values['latent_dilation_rates']}{where} must hold "
                               "rates >= 1.")
    return hparams

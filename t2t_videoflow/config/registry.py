"""Registries of problems and hparams sets (T2T's `registry`, reduced to what we use).

Problems and hparams sets register themselves with decorators where they are
defined (`problems/`, `hparams/`, or a `--t2t_usr_dir` module):

    @registry.register_hparams
    def videoflow_bpp():
        ...

    @registry.register_problem("stochastic_shapes", aliases=("video_stochastic_shapes10k",))
    class StochasticShapes(VideoProblem):
        ...

Lookups (`problem`, `hparams`) import the built-in `t2t_videoflow.problems` and
`t2t_videoflow.hparams` packages on first use, so the built-in names are always
known. An unknown name raises `UnknownNameError` listing every known name and the
closest match.
"""

import difflib
import importlib

from t2t_videoflow.errors import RegistrationError, UnknownNameError

_PROBLEMS = {}   # name -> problem class (or factory)
_ALIASES = {}    # alias -> canonical problem name
_HPARAMS = {}    # name -> function returning HParams
_builtins_loaded = set()   # the kinds ("problems", "hparams") already imported


def _load_builtins(kind=None):
    """Imports the built-in `t2t_videoflow.problems` and/or `t2t_videoflow.hparams`
    (`kind`: "problems", "hparams" or None for both). The hparams sets need no
    TensorFlow, so a CLI can check --hparams_set and --hparams before loading it."""
    for name in ((kind,) if kind else ("problems", "hparams")):
        if name not in _builtins_loaded:
            _builtins_loaded.add(name)
            importlib.import_module(f"t2t_videoflow.{name}")


def _unknown(kind, name, known):
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.4)
    msg = f"Unknown {kind} {name!r}."
    if close:
        msg += f" Did you mean {close[0]!r}?"
    msg += f" Known {kind}s: {', '.join(known) if known else '(none)'}."
    return UnknownNameError(msg)


# ----------------------------------------------------------------------------- problems
def register_problem(name=None, aliases=()):
    """Class decorator registering a problem under `name` (default: the class's `name`).

    Usable bare (`@register_problem`) or called (`@register_problem("x", aliases=(..))`).
    The class must be constructible with no arguments. Its `name` attribute is set to
    the registered name.
    """
    def decorator(cls, reg_name=name):
        reg_name = reg_name or getattr(cls, "name", None)
        if not reg_name:
            raise RegistrationError(f"{cls!r} has no problem name.")
        for n in (reg_name, *aliases):
            if n in _PROBLEMS or n in _ALIASES:
                raise RegistrationError(f"Problem name {n!r} is already registered.")
        cls.name = reg_name
        cls.aliases = tuple(aliases)
        _PROBLEMS[reg_name] = cls
        for alias in aliases:
            _ALIASES[alias] = reg_name
        return cls

    if callable(name) and not isinstance(name, str):
        cls, name = name, None
        return decorator(cls, None)
    return decorator


def problem_class(name):
    """The registered class for a problem name or alias."""
    _load_builtins("problems")
    canonical = _ALIASES.get(name, name)
    if canonical not in _PROBLEMS:
        raise _unknown("problem", name, list(_PROBLEMS) + list(_ALIASES))
    return _PROBLEMS[canonical]


def problem(name, **kwargs):
    """A new instance of the problem registered as `name` (or an alias)."""
    return problem_class(name)(**kwargs)


def list_problems(include_aliases=False):
    """Sorted registered problem names (optionally with aliases)."""
    _load_builtins("problems")
    names = list(_PROBLEMS) + (list(_ALIASES) if include_aliases else [])
    return sorted(names)


def problem_aliases():
    """Dict alias -> canonical name."""
    _load_builtins("problems")
    return dict(_ALIASES)


# ----------------------------------------------------------------------------- hparams
def register_hparams(name=None):
    """Function decorator registering an hparams set (default name: the function's)."""
    def decorator(fn, reg_name=name):
        reg_name = reg_name or fn.__name__
        if reg_name in _HPARAMS:
            raise RegistrationError(f"Hparams set {reg_name!r} is already registered.")
        _HPARAMS[reg_name] = fn
        return fn

    if callable(name):
        fn, name = name, None
        return decorator(fn, None)
    return decorator


def hparams(name):
    """A fresh HParams object from the set registered as `name`."""
    _load_builtins("hparams")
    if name not in _HPARAMS:
        raise _unknown("hparams set", name, _HPARAMS)
    hp = _HPARAMS[name]()
    from t2t_videoflow.config.hparams_lib import HParams
    if not isinstance(hp, HParams):
        raise RegistrationError(f"Hparams set {name!r} returned {type(hp).__name__}, "
                                "not HParams.")
    return hp


def list_hparams():
    """Sorted registered hparams set names."""
    _load_builtins("hparams")
    return sorted(_HPARAMS)


def create_hparams(set_name, overrides="", problem_name=None):
    """Looks up a set, applies `overrides` and, if a problem is given, checks they fit.

    Args:
      set_name: registered hparams set name.
      overrides: `name=value,...` string (see `HParams.parse`).
      problem_name: optional problem name or instance; its `check_hparams` is called.

    Returns:
      HParams.

    Every hparam is checked (`hparams_lib.validate`) once the overrides are applied.

    Raises:
      UnknownNameError, HParamsError, or ValueError naming the mismatch.
    """
    from t2t_videoflow.config.hparams_lib import validate
    hp = hparams(set_name)
    hp.parse(overrides)
    validate(hp, set_name)
    if problem_name is not None:
        prob = problem(problem_name) if isinstance(problem_name, str) else problem_name
        prob.check_hparams(hp, set_name=set_name)
    return hp

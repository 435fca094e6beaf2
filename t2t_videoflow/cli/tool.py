"""Shared plumbing of the `t2t-videoflow-*` command-line tools.

Every tool is a `Tool`: its flags are declared with `Tool.define`, which also records
the tool's own default, help text and allowed range. A tool's `main` then runs in three
stages, so that a wrong command line fails in well under a second:

  1. `Tool.check_flags`: required flags, ranges and choices, from the flag values
     alone (no TensorFlow, no registry, no file written). A bad value is one
     `NAME: error: --flag ...` line and exit code 1.
  2. `import_tensorflow`: TensorFlow is imported here, with its C++ start-up lines
     (oneDNN notice, "Could not find cuda drivers", the CUDA `cuInit` failure on
     machines without a GPU, CPU feature guard) kept off the terminal unless the user
     asked for them (`--tf_cpp_log`, or `TF_CPP_MIN_LOG_LEVEL` set in the
     environment, which leaves TensorFlow's own logging as it is), and with the CPU
     allocator chosen by `--cpu_allocator` (`use_cpu_allocator`).
  3. The tool's body, under `errors.run_cli` (user errors as one line).

The tool modules import TensorFlow and the model code lazily (`lazy_import`), so
importing a tool module (which defines its flags) costs only absl.

All tools define their flags on absl's global `FLAGS`; several tools share names
(`--problem`, `--data_dir`, ...) and may be imported into one process (tests, user
scripts). absl keeps the first definition of a name; each `Tool` keeps its own default
and help for it, and `Tool.value` applies the tool's default when the flag was not
given on the command line.
"""

import contextlib
import ctypes
import importlib
import math
import os
import sys
import textwrap
import types

from absl import app, flags

from t2t_videoflow.errors import UsageError

FLAGS = flags.FLAGS

_DEFINERS = {
    "string": flags.DEFINE_string,
    "integer": flags.DEFINE_integer,
    "float": flags.DEFINE_float,
    "boolean": flags.DEFINE_boolean,
}

# Largest seed every consumer takes (tf.int32 seeds in the samplers, numpy's 2**32).
MAX_SEED = 2**31 - 1

HELP_TOKENS = ("--help", "-help", "-h", "--helpshort", "-helpshort", "-?")

# The inference tools' --ema_weights (t2t_videoflow/training/weight_ema.py).
EMA_WEIGHTS_HELP = ("Use the moving average of the weights where the checkpoint holds one "
                    "(runs trained with weight_ema_decay > 0); --noema_weights: the "
                    "trained weights themselves.")


def define(kind, name, default, help_text, **kwargs):
    """Defines flag `name` of `kind` ("string", "integer", "float", "boolean", "enum")
    unless a tool imported earlier already did."""
    if name in FLAGS:
        return
    if kind == "enum":
        flags.DEFINE_enum(name, default, kwargs.pop("enum_values"), help_text, **kwargs)
    else:
        _DEFINERS[kind](name, default, help_text, **kwargs)


class _LazyModule(types.ModuleType):
    """Stands for a module that is imported on first attribute access."""

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self.__name__), attr)


def lazy_import(name):
    """`name`'s module if already imported, else a stand-in that imports it on first
    use (`tf = lazy_import("tensorflow")`; `tf.constant` then imports TensorFlow)."""
    return sys.modules.get(name) or _LazyModule(name)


@contextlib.contextmanager
def _stderr_silenced():
    """Sends file descriptor 2 (C++ logging included) to /dev/null inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


CPU_ALLOCATORS = ("auto", "bfc", "system")
# glibc's mallopt parameter for the number of malloc arenas (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8


def use_cpu_allocator(kind):
    """Chooses where TensorFlow's CPU tensors live; call before TensorFlow is imported.

    "bfc" (TensorFlow's own): a pool (oneDNN's allocator over a
    best-fit-with-coalescing arena) that keeps every page it has ever handed out, so
    the process holds the step's worst fragmentation for good. "system": every
    tensor from `malloc` (`TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1`, unless the variable is
    already set), with glibc held to 2 malloc arenas (its default, 8 per core, keeps
    freed memory scattered over thread arenas): freed tensors go back to the system,
    so the process holds about what is alive, for a few percent of step time (the
    page faults of fresh memory). README, memory section: the paper model's
    recomputing training step, measured both ways. TensorFlow's per-device memory
    statistics (`tf.config.experimental.get_memory_info`) read 0 under "system".

    "auto" is a tool's choice between the two (`Tool.main`), not a kind of its own.

    Raises:
      ValueError: unknown `kind`.
    """
    if kind not in CPU_ALLOCATORS or kind == "auto":
        raise ValueError(f"Unknown CPU allocator {kind!r}; expected one of "
                         f"{CPU_ALLOCATORS}.")
    if kind != "system":
        return
    os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to limit
        return
    libc.mallopt(_M_ARENA_MAX, 2)


def auto_cpu_allocator(memory_efficient_backprop):
    """`--cpu_allocator=auto` for a training run: "system" with
    `memory_efficient_backprop` (a run that trades step time for memory: the paper
    model's recomputing step peaked at 2.55 GB instead of 2.89, and took as long),
    else "bfc" (plain steps were about 8% slower under "system"). README, memory."""
    return "system" if memory_efficient_backprop else "bfc"


def import_tensorflow(show_log=False):
    """Imports TensorFlow, by default without its C++ start-up log lines.

    Unless `show_log` or `TF_CPP_MIN_LOG_LEVEL` is set in the environment (then TF logs
    as it always does), this sets `TF_CPP_MIN_LOG_LEVEL=1` (C++ INFO lines off;
    warnings and errors stay) and silences stderr while TF is imported and its GPU
    platform probed: the lines printed there (oneDNN notice, "Could not find cuda
    drivers", `cuInit` failure without a GPU) are not governed by that variable. A
    failing import still raises its Python exception.

    Returns:
      The `tensorflow` module.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if show_log or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return importlib.import_module("tensorflow")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "1"
    with _stderr_silenced():
        tf = importlib.import_module("tensorflow")
        # Probes the CUDA platform now (cuInit); creates no device, so logical devices
        # and distribution strategies can still be configured afterwards.
        tf.config.list_physical_devices("GPU")
    return tf


define("boolean", "tf_cpp_log", False, "Show TensorFlow's C++ start-up log lines "
       "(oneDNN, CUDA, CPU features); also shown when TF_CPP_MIN_LOG_LEVEL is set in "
       "the environment.")
define("enum", "cpu_allocator", "auto", "Where TensorFlow's CPU tensors live: 'bfc' "
       "(TensorFlow's pool, which keeps every page it has used; the fastest), 'system' "
       "(malloc with 2 glibc arenas: freed tensors go back to the system, so the "
       "process holds less, at a few percent of step time) or 'auto': 'system' for a "
       "training run with memory_efficient_backprop (it trades time for memory "
       "anyway), else 'bfc'.", enum_values=list(CPU_ALLOCATORS))


class Tool:
    """One `t2t-videoflow-*` command: its flags, their checks, help and entry point.

    Args:
      name: the command's name, e.g. "t2t-videoflow-trainer" (prefix of its errors).
      doc: the tool module's docstring (shown by --help).
    """

    def __init__(self, name, doc):
        self.name = name
        self.doc = doc or ""
        self._specs = {}
        self.cpu_allocator = None

    def define(self, kind, name, default, help_text, *, required=False, minimum=None,
               maximum=None, above=None, allow=(), **kwargs):
        """Defines a flag of this tool (see `define`) and how to check its value.

        Args:
          kind, name, default, help_text: as `define`; `enum_values=` for "enum".
          required: the value must be given (not None or empty).
          minimum, maximum: inclusive range of a number (None: unchecked).
          above: exclusive lower bound of a number (None: unchecked).
          allow: values accepted outside the range (e.g. -1 meaning "all").
        """
        define(kind, name, default, help_text, **kwargs)
        self._specs[name] = dict(kind=kind, default=default, help=help_text,
                                 required=required, minimum=minimum, maximum=maximum,
                                 above=above, allow=tuple(allow))

    @property
    def flag_names(self):
        """This tool's flag names, in definition order."""
        return list(self._specs)

    def value(self, name):
        """The flag's value; this tool's default where the command line did not give
        the flag (another tool may have defined it first with another default)."""
        flag = FLAGS[name]
        spec = self._specs.get(name)
        if spec is not None and not flag.present and flag.value == flag.default:
            return spec["default"]
        return flag.value

    def check_flags(self):
        """Raises UsageError naming the first flag that is missing or out of range."""
        for name, spec in self._specs.items():
            value = self.value(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                if spec["required"]:
                    raise UsageError(f"--{name} is required.")
                continue
            if spec["kind"] not in ("integer", "float") or value in spec["allow"]:
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"--{name} must be a finite number; got {value}.")
            low, high = spec["minimum"], spec["maximum"]
            allowed = " or ".join(str(a) for a in spec["allow"])
            either = f"{allowed} or " if allowed else ""
            if low is not None and value < low:
                raise UsageError(f"--{name} must be {either}>= {low}; got {value}.")
            if spec["above"] is not None and not value > spec["above"]:
                raise UsageError(f"--{name} must be {either}> {spec['above']}; got {value}.")
            if high is not None and value > high:
                raise UsageError(f"--{name} must be {either}<= {high}; got {value}.")

    def help_text(self):
        """The tool's docstring and one entry per flag (its help and default)."""
        lines = [self.doc.strip(), "", "Flags:"]
        for name, spec in self._specs.items():
            default = spec["default"]
            shown = "" if default in (None, "") else f" (default: {default!r})"
            required = " [required]" if spec["required"] else ""
            lines.append(f"  --{name}{required}")
            lines += textwrap.wrap(spec["help"] + shown, width=84,
                                   initial_indent="      ", subsequent_indent="      ")
        for name in ("tf_cpp_log", "cpu_allocator"):
            lines.append(f"  --{name}")
            default = FLAGS[name].default
            shown = f" (default: {default!r})" if isinstance(default, str) else ""
            lines += textwrap.wrap(FLAGS[name].help + shown, width=84,
                                   initial_indent="      ", subsequent_indent="      ")
        lines += ["", "Also --flagfile=FILE; --helpfull lists every absl flag."]
        return "\n".join(lines)

    def error(self, message):
        """Prints `NAME: error: message` (one line) on stderr; returns exit code 1."""
        print(f"{self.name}: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 1

    def main(self, argv, body, runner=None, precheck=None, auto_allocator=None):
        """Checks the flags (and runs `precheck()`, which may raise UsageError), sets
        the CPU allocator, imports TensorFlow quietly, then runs `body()` under
        `runner(name, argv, body)` (default `errors.run_cli`: user errors become one
        line and exit code 1).

        `--cpu_allocator=auto` becomes `auto_allocator()` ("bfc" or "system"; called
        before TensorFlow loads), or "bfc" without one. The kind used is
        `self.cpu_allocator` (None when TensorFlow was loaded before).

        Returns:
          The exit code.
        """
        if len(argv) > 1:
            return self.error(f"unexpected arguments {argv[1:]}")
        try:
            self.check_flags()
            if precheck is not None:
                precheck()
        except UsageError as e:
            return self.error(e)
        self.cpu_allocator = None
        if "tensorflow" not in sys.modules:
            kind = FLAGS.cpu_allocator
            if kind == "auto":
                kind = auto_allocator() if auto_allocator is not None else "bfc"
            use_cpu_allocator(kind)
            self.cpu_allocator = kind
        import_tensorflow(show_log=FLAGS.tf_cpp_log)
        if runner is None:
            runner = importlib.import_module("t2t_videoflow.errors").run_cli
        return runner(self.name, argv, body)

    def parse_flags(self, argv):
        """absl flags parser: --help prints `help_text` (exit 0); a parsing error
        (unknown flag, a value of the wrong type) is one line and exit code 1."""
        for arg in argv[1:]:
            if arg == "--":
                break
            if arg in HELP_TOKENS:
                print(self.help_text())
                sys.exit(0)
        try:
            return FLAGS(argv)
        except flags.Error as e:
            sys.exit(self.error(e))

    def run(self, main):
        """Console-script entry point: `app.run(main)` with this tool's parser."""
        app.run(main, flags_parser=self.parse_flags)

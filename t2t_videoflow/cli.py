"""Shared plumbing of the `t2t-videoflow-*` command-line tools.

All tools define their flags on absl's global `FLAGS`; several tools share names
(`--problem`, `--data_dir`, ...) and may be imported into one process (tests, user
scripts), so flags are defined through `define`, which skips a name already defined
with the same type.
"""

from absl import flags

FLAGS = flags.FLAGS

_DEFINERS = {
    "string": flags.DEFINE_string,
    "integer": flags.DEFINE_integer,
    "float": flags.DEFINE_float,
    "boolean": flags.DEFINE_boolean,
}


def define(kind, name, default, help_text, **kwargs):
    """Defines flag `name` of `kind` ("string", "integer", "float", "boolean", "enum")
    unless a tool imported earlier already did."""
    if name in FLAGS:
        return
    if kind == "enum":
        flags.DEFINE_enum(name, default, kwargs.pop("enum_values"), help_text, **kwargs)
    else:
        _DEFINERS[kind](name, default, help_text, **kwargs)

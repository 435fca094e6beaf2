"""Sampling temperatures as the tools take them: `--temperatures=0.5,1.0,0/1`.

One parser for every tool with a `--temperatures` flag (the motion diagnostic, the
temperature sweep); it needs no TensorFlow, so a tool checks the flag before loading it.
"""

import math

from t2t_videoflow.errors import UsageError

_HINT = ("give comma-separated numbers >= 0, e.g. 0.1,0.5,1.0, or '/'-separated "
         "per-level values such as 0/1")


def parse_temperatures(value):
    """`"0.5,1.0,0/1"` (or a sequence of numbers) -> `[0.5, 1.0, [0.0, 1.0]]`.

    Entries keep the given order. An entry with '/' is one temperature per flow level,
    finest first and the top last (its length is checked against a model where the
    model is known, `VideoFlow.sample`).

    Raises:
      UsageError: an empty list or item, a non-number, a negative or non-finite value,
        or an entry given twice.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    temperatures = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if isinstance(text, str) and not text:
            raise UsageError(f"--temperatures {value!r} has an empty item; {_HINT}.")
        parts = text.split("/") if isinstance(text, str) else [text]
        try:
            taus = [float(part) for part in parts]
        except (TypeError, ValueError):
            raise UsageError(f"--temperatures: {text!r} is not a number; {_HINT}.") from None
        if not all(math.isfinite(tau) and tau >= 0 for tau in taus):
            raise UsageError(f"--temperatures: every temperature must be a finite "
                             f"number >= 0; got {text!r}.")
        entry = taus if len(taus) > 1 else taus[0]
        if entry in temperatures:
            shown = "/".join(f"{tau:g}" for tau in taus)
            raise UsageError(f"--temperatures: {shown} is given twice.")
        temperatures.append(entry)
    if not temperatures:
        raise UsageError(f"--temperatures is empty; {_HINT}.")
    return temperatures

"""Writing an experiment's results: a JSON table, a printed table, optional plots.

Every experiment returns a JSON-able dict; `write_json` stores it as
`RESULTS_DIR/<experiment>.json` (through `tf.io.gfile`, so `gs://` works), and
`format_table` renders rows of numbers for the terminal. Plots need matplotlib (the
`plots` extra); without it `plots_wanted` says in one line that the plots are skipped
and how to get them, and the experiment writes its results all the same.
"""

import io
import json
import os

from t2t_videoflow.errors import UsageError


def write_json(results_dir, name, result):
    """Writes `result` to `results_dir/name.json` (atomically where the filesystem
    allows); returns the path."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.io.gfile.makedirs(results_dir)
    path = os.path.join(results_dir, f"{name}.json")
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(result, indent=1, sort_keys=False) + "\n")
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return path


def write_bytes(path, data):
    """Writes `data` (bytes) to `path` through `tf.io.gfile`; returns the path."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)
    return path


def format_value(value):
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def format_table(header, rows):
    """A fixed-width text table: `header` a list of column names, `rows` lists of values
    (floats shown with 4 decimals)."""
    cells = [list(map(str, header))] + [[format_value(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


PLOTS_INSTALL = "pip install 't2t-videoflow[plots]'"


def have_matplotlib():
    """Whether matplotlib (the `plots` extra) can be imported."""
    try:
        import matplotlib  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        return False
    return True


def plots_wanted(plots, name, log=print):
    """Whether experiment `name` draws its plots: `plots` is set and matplotlib is
    installed. When it is not installed, logs one line saying the plots are skipped
    and how to get them (the results are written without them)."""
    if not plots:
        return False
    if have_matplotlib():
        return True
    log(f"{name}: plots skipped: matplotlib is not installed ({PLOTS_INSTALL} to get "
        "them; --plots=false skips them without this note)")
    return False


def pyplot():
    """matplotlib.pyplot with a non-interactive backend, or a one-line UsageError."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise UsageError(f"Plots need matplotlib: {PLOTS_INSTALL} "
                         "(or pass --plots=false).") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    return plt


def save_figure(fig, path):
    """Saves a matplotlib figure as PNG through `tf.io.gfile`; closes it; returns path."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    return write_bytes(path, buffer.getvalue())

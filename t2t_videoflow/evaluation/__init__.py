"""The paper's experiments on a trained run, one module each (`t2t-videoflow-eval`).

Each experiment module defines

    NAME                      the --experiment name
    OPTIONS                   {keyword of `run`: flag name} the CLI passes on
    run(context, **options)   -> JSON-able dict (also written to results_dir)
    format_result(result)     -> the table printed by the CLI
    check_options(**options)  (optional) raises UsageError for options that cannot
                              work, before the CLI restores the run

and works on a `context.RunContext` (a restored model and its split) through the
model's public engine (`bits_per_pixel`, `frame_objectives`, `sample`, `encode`,
`decode`), so each can also be called from Python on any `VideoFlow`.
"""

import importlib

# --experiment name -> module (imported on first use: TensorFlow loads after the flags).
EXPERIMENTS = {
    "bpp": "t2t_videoflow.evaluation.bpp",
    "out_of_sequence": "t2t_videoflow.evaluation.out_of_sequence",
    "interpolate": "t2t_videoflow.evaluation.interpolate",
    "long_rollout": "t2t_videoflow.evaluation.long_rollout",
    "fvd": "t2t_videoflow.evaluation.fvd",
    "temperature_sweep": "t2t_videoflow.evaluation.temperature_sweep",
}


def experiment(name):
    """The module of experiment `name`."""
    from t2t_videoflow.errors import UsageError  # pylint: disable=import-outside-toplevel
    if name not in EXPERIMENTS:
        raise UsageError(f"Unknown --experiment {name!r}; choose one of "
                         f"{', '.join(EXPERIMENTS)}.")
    return importlib.import_module(EXPERIMENTS[name])

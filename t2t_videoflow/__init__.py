"""t2t-videoflow: VideoFlow (Kumar et al.) in TensorFlow 2, faithful to T2T's
`next_frame_glow`.

The public API (each name loads its module, and TensorFlow, on first use):

    import t2t_videoflow as vf

    run = vf.load_trained_run("runs/shapes_demo")      # a trainer's output dir
    bpp = run.model.bits_per_pixel(clips, num_context=1)
    futures = run.model.sample(clips[:, :1], num_frames=2, temperature=0.5, seed=0)

    hparams = vf.create_hparams("videoflow_tiny", "depth=2")
    model = vf.build_model(hparams, frame_shape=(16, 16, 3))

- `VideoFlow`: the model (`bits_per_pixel`, `sample`, `encode`, `decode`,
  `data_init`); `build_model(hparams, frame_shape)` builds one from hparams.
- `load_trained_run(output_dir)`: a run dir's model with its newest (or a given)
  checkpoint, as a `TrainedRun` (model, hparams, problem, checkpoint, step, weights).
- `preprocess` / `postprocess`: uint8 frames to the flow's [-0.5, 0.5] and back.
- Registries: `create_hparams`, `list_hparams`, `register_hparams`, `problem`,
  `list_problems`, `register_problem`; `import_usr_dir` imports a user module that
  registers more.
"""

import importlib

__version__ = "0.1.0"

# name -> module that defines it; resolved on first access (PEP 562), so that the
# command-line tools can check their flags before TensorFlow loads.
_PUBLIC = {
    "VideoFlow": "t2t_videoflow.model.videoflow",
    "build_model": "t2t_videoflow.model.videoflow",
    "preprocess": "t2t_videoflow.model.videoflow",
    "postprocess": "t2t_videoflow.model.videoflow",
    "load_trained_run": "t2t_videoflow.training.restore",
    "TrainedRun": "t2t_videoflow.training.restore",
    "create_hparams": "t2t_videoflow.config.registry",
    "list_hparams": "t2t_videoflow.config.registry",
    "register_hparams": "t2t_videoflow.config.registry",
    "problem": "t2t_videoflow.config.registry",
    "list_problems": "t2t_videoflow.config.registry",
    "register_problem": "t2t_videoflow.config.registry",
    "import_usr_dir": "t2t_videoflow.config.usr_dir",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 't2t_videoflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))

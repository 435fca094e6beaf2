"""Installs t2t-videoflow.

`problems/` and `hparams/` live at the top of the repository (the repository layout) but are
installed inside the package namespace as `t2t_videoflow.problems` and
`t2t_videoflow.hparams`, never as top-level import names.
"""
import setuptools

setuptools.setup(
    name="t2t-videoflow",
    version="0.1.0",
    description=(
        "TensorFlow 2 / Keras port of VideoFlow (Kumar et al.), faithful to "
        "Tensor2Tensor's next_frame_glow."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=(
        setuptools.find_packages(include=["t2t_videoflow", "t2t_videoflow.*"])
        + ["t2t_videoflow.problems", "t2t_videoflow.hparams"]
    ),
    package_dir={
        "t2t_videoflow.problems": "problems",
        "t2t_videoflow.hparams": "hparams",
    },
    install_requires=[
        # Tested set: tensorflow 2.21.0, tensorflow-probability 0.25.0,
        # tf-keras 2.21.0 (TFP 0.25 imports it), tensorflow-datasets 4.9.10,
        # keras 3.15.1, absl-py 2.5.1, numpy 2.4.6.
        "tensorflow>=2.21,<2.22",
        "tensorflow-probability>=0.25,<0.26",
        "tf-keras>=2.21,<2.22",
        "tensorflow-datasets>=4.9.10,<5",
        "absl-py>=2.1",
        "numpy>=1.26",
        # GIF writing for t2t-videoflow-decoder (TF encodes PNG but not animated GIF).
        "pillow>=10",
        # tf.summary needs it; TF 2.21 no longer installs it.
        "tensorboard>=2.20,<3",
    ],
    # matplotlib draws the evaluation plots and the docs' figures
    # (benchmarks/shapes_results.py); the tests check the plots as well as the
    # message printed without it.
    extras_require={"test": ["pytest>=8", "matplotlib>=3.7"],
                    "plots": ["matplotlib>=3.7"]},
    entry_points={"console_scripts": [
        "t2t-videoflow-datagen = t2t_videoflow.cli.datagen:run_main",
        "t2t-videoflow-trainer = t2t_videoflow.cli.trainer:run_main",
        "t2t-videoflow-decoder = t2t_videoflow.cli.decoder:run_main",
        "t2t-videoflow-exporter = t2t_videoflow.cli.exporter:run_main",
        "t2t-videoflow-motion = t2t_videoflow.cli.motion:run_main",
        "t2t-videoflow-import = t2t_videoflow.cli.t2t_import:run_main",
        "t2t-videoflow-eval = t2t_videoflow.cli.evaluate:run_main",
    ]},
)

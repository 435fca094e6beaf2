"""t2t-videoflow: VideoFlow (Kumar et al. 2019) in TensorFlow 2, faithful to T2T."""

__version__ = "0.1.0"

"""Video data on disk (T2T's per-frame record format) and tf.data input pipelines."""

from t2t_videoflow.data.records import DataError  # noqa: F401

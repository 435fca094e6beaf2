"""`VideoProblem`: what every video problem knows (frame size, splits, files, checks).

A problem generates T2T-format shards (`generate_data`), finds them (`data_files`),
checks that an hparams set fits it (`check_hparams`) and builds its tf.data input
pipeline (`dataset`, see `t2t_videoflow.data.pipeline`).
"""

import os

import tensorflow as tf

from t2t_videoflow.data import pipeline
from t2t_videoflow.data.records import DataError, find_shards, shard_paths
from t2t_videoflow.errors import HParamsError


class VideoProblem:
    """Base class. Subclasses set the class attributes and implement `generate_data`.

    Attributes:
      name: registered name (set by `registry.register_problem`).
      file_prefix: shard file prefix (T2T's problem name where T2T defines the data).
      frame_height, frame_width, frame_channels: stored frame size.
      frames_per_video: frames stored per video.
      num_shards: dict split -> number of shards written by datagen.
    """

    name = None
    aliases = ()
    file_prefix = None
    frame_height = 64
    frame_width = 64
    frame_channels = 3
    frames_per_video = None
    num_shards = {"train": 10, "dev": 1}

    @property
    def prefix(self):
        return self.file_prefix or self.name

    @property
    def frame_shape(self):
        return (self.frame_height, self.frame_width, self.frame_channels)

    @property
    def splits(self):
        return tuple(self.num_shards)

    # -- files ----------------------------------------------------------------------
    def shard_paths(self, data_dir, split):
        """Final shard paths datagen writes for `split`."""
        return shard_paths(data_dir, self.prefix, split, self.num_shards[split])

    def data_files(self, data_dir, split):
        """Sorted existing shard files of `split`.

        Raises:
          DataError: unknown split, missing data dir, or no shard files for the split.
        """
        if split not in self.num_shards:
            raise DataError(f"Problem {self.name!r} has no {split!r} split "
                            f"(splits: {', '.join(self.splits)}).")
        if not data_dir or not tf.io.gfile.isdir(data_dir):
            raise DataError(f"Data dir {data_dir!r} does not exist; run "
                            f"t2t-videoflow-datagen --problem={self.name} --data_dir=DIR.")
        files = find_shards(data_dir, self.prefix, split)
        if not files:
            present = sorted(os.path.basename(p) for p in tf.io.gfile.listdir(data_dir))
            raise DataError(
                f"No {split!r} shards of problem {self.name!r} in data dir {data_dir} "
                f"(looked for {self.prefix}-{split}-*-of-*; the dir holds "
                f"{len(present)} entries{': ' + ', '.join(present[:5]) if present else ''}). "
                f"Run t2t-videoflow-datagen --problem={self.name} --data_dir={data_dir}.")
        return files

    # -- checks ---------------------------------------------------------------------
    def check_hparams(self, hparams, set_name=None):
        """Raises ValueError naming the mismatch if `hparams` does not fit this problem."""
        what = f"hparams set {set_name!r}" if set_name else "the hparams"
        hp_shape = (hparams.frame_height, hparams.frame_width, hparams.frame_channels)
        if hp_shape != self.frame_shape:
            raise HParamsError(
                f"{what} is for {hp_shape[0]}x{hp_shape[1]}x{hp_shape[2]} frames but problem "
                f"{self.name!r} has {self.frame_height}x{self.frame_width}x"
                f"{self.frame_channels} frames; override frame_height/frame_width or pick "
                "a matching problem.")
        factor = 2 ** hparams.n_levels
        if self.frame_height % factor or self.frame_width % factor:
            raise HParamsError(
                f"{what}: n_levels={hparams.n_levels} squeezes by {factor}, which does not "
                f"divide the {self.frame_height}x{self.frame_width} frames of {self.name!r}.")
        n_in, n_tgt = hparams.video_num_input_frames, hparams.video_num_target_frames
        if n_in < 1 or n_tgt < 1:
            raise HParamsError(f"{what}: video_num_input_frames and video_num_target_frames "
                             f"must be >= 1, got {n_in} and {n_tgt}.")
        if self.frames_per_video is not None and n_in + n_tgt > self.frames_per_video:
            raise HParamsError(
                f"{what} needs {n_in}+{n_tgt} frames per clip but problem {self.name!r} "
                f"has {self.frames_per_video} frames per video.")
        ntf = hparams.num_train_frames
        if ntf != -1:
            if not 1 <= ntf <= n_in + n_tgt:
                raise HParamsError(f"{what}: num_train_frames={ntf} must be -1 or in "
                                 f"[1, {n_in + n_tgt}] (the clip length).")
            if hparams.gen_mode == "conditional" and ntf <= n_in:
                raise HParamsError(
                    f"{what}: num_train_frames={ntf} leaves no target frame after "
                    f"video_num_input_frames={n_in} conditioning frames.")
        if hparams.batch_size < 1:
            raise HParamsError(f"{what}: batch_size must be >= 1, got {hparams.batch_size}.")

    # -- data -----------------------------------------------------------------------
    def generate_data(self, data_dir, raw_data_dir=None, log=print, **kwargs):
        """Writes the problem's shards to `data_dir`; returns a summary dict."""
        raise NotImplementedError

    def dataset(self, mode, data_dir, hparams, **kwargs):
        """The problem's tf.data pipeline; see `pipeline.make_dataset`."""
        return pipeline.make_dataset(self, hparams, data_dir, mode, **kwargs)

    def split_for_mode(self, mode, use_test_set=False):
        """T2T's split per mode: train -> train, eval -> dev (or test if requested)."""
        if mode == "train":
            return "train"
        split = "test" if use_test_set else "dev"
        if split not in self.num_shards:
            raise DataError(f"Problem {self.name!r} has no {split!r} split.")
        return split

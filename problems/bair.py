"""BAIR robot pushing, action-free (T2T `bair_robot_pushing`; TFDS
`bair_robot_pushing_small`).

VideoFlow uses camera `image_aux1`, 64x64x3, frames 0-12 of each 30-frame video:
3 conditioning + 10 target frames; training scores random 4-frame windows inside
those 13 frames (`next_frame_glow_bair_quant`: `num_train_frames=4`).

Two sources, both written to T2T-format shards (`video_bair_robot_pushing-{split}-*`,
all 30 frames per video, plus `state` and `action` per frame as T2T stores them):

* Original BAIR TFRecords (`--raw_data_dir`, the unpacked
  `bair_robot_pushing_dataset_v0.tar`: `softmotion30_44k/{train,test}/*`). One
  `tf.train.Example` per video with keys `{i}/image_aux1/encoded` (12,288 raw RGB
  bytes), `{i}/image_main/encoded` (unused), `{i}/action` (4 floats),
  `{i}/endeffector_pos` (3 floats). Files are taken in sorted name order; as in T2T,
  the last two train files (512 videos) form the dev split (the paper's validation
  set), the other 167 files train (42,752 videos), and `test/*` is test (256 videos).
  T2T used glob order, so its dev files may differ.
* TFDS `bair_robot_pushing_small` (already prepared in `--tfds_data_dir` or TFDS's
  default dir; never downloaded here). TFDS has train (43,264) and test (256) only;
  dev is carved deterministically as the last 512 videos of TFDS's stored train order
  (TFDS shuffles examples by key hash when preparing, so these are not T2T's two
  files), and train is the rest (42,752). TFDS stores PNGs, which are copied as is.

Train 10 shards (contiguous runs of videos), dev 1, test 1.
"""

import os
import re

import numpy as np
import tensorflow as tf

from t2t_videoflow.config import registry
from t2t_videoflow.data.records import (DataError, ShardSetWriter, encode_png, iterate_records,
                                        png_shape, scan_tfrecord, video_examples)
from t2t_videoflow.problems.base import VideoProblem

_AUX1_KEY = re.compile(r"^(\d+)/image_aux1/encoded$")
TFDS_NAME = "bair_robot_pushing_small"


def parse_raw_bair_video(serialized, path, index, frame_shape=(64, 64, 3)):
    """One original BAIR record -> (frames uint8 [T,H,W,C], {"state", "action"} [T, n]).

    Raises:
      DataError naming `path`, the record and the frame on any malformed content.
    """
    where = f"{path} record {index}"
    try:
        ex = tf.train.Example.FromString(serialized)
    except Exception as e:
        raise DataError(f"{where}: not a tf.train.Example ({e}).") from None
    feats = ex.features.feature
    numbers = sorted(int(m.group(1)) for m in map(_AUX1_KEY.match, feats) if m)
    if not numbers:
        raise DataError(f"{where}: no '{{i}}/image_aux1/encoded' keys; not an original BAIR "
                        f"record (keys: {sorted(feats)[:6]}).")
    if numbers != list(range(len(numbers))):
        raise DataError(f"{where}: image_aux1 frame numbers are not 0..{len(numbers) - 1}.")
    nbytes = int(np.prod(frame_shape))
    frames = np.empty((len(numbers), *frame_shape), np.uint8)
    floats = {"state": [], "action": []}
    for i in numbers:
        data = feats[f"{i}/image_aux1/encoded"].bytes_list.value
        if len(data) != 1 or len(data[0]) != nbytes:
            got = len(data[0]) if data else 0
            raise DataError(f"{where} frame {i}: image_aux1 has {got} bytes, expected {nbytes} "
                            f"(raw {frame_shape[0]}x{frame_shape[1]}x{frame_shape[2]} RGB).")
        frames[i] = np.frombuffer(data[0], np.uint8).reshape(frame_shape)
        for out_key, in_key, n in (("state", "endeffector_pos", 3), ("action", "action", 4)):
            key = f"{i}/{in_key}"
            values = list(feats[key].float_list.value) if key in feats else []
            floats[out_key].append(values if len(values) == n else [0.0] * n)
    return frames, {k: np.asarray(v, np.float32) for k, v in floats.items()}


@registry.register_problem("bair_action_free", aliases=("video_bair_robot_pushing",))
class BairActionFree(VideoProblem):
    """BAIR robot pushing without actions; see the module docstring."""

    file_prefix = "video_bair_robot_pushing"
    frames_per_video = 30
    num_shards = {"train": 10, "dev": 1, "test": 1}
    dev_files = 2        # raw source: last two train files, as T2T
    dev_videos = 512     # TFDS source: last 512 train videos

    # -- raw source -------------------------------------------------------------------
    def raw_files(self, raw_data_dir):
        """Dict split -> sorted source files from the original BAIR tar's layout."""
        if not raw_data_dir or not tf.io.gfile.isdir(raw_data_dir):
            raise DataError(f"--raw_data_dir {raw_data_dir!r} does not exist.")
        root = raw_data_dir
        if tf.io.gfile.isdir(os.path.join(root, "softmotion30_44k")):
            root = os.path.join(root, "softmotion30_44k")

        def listing(split):
            d = os.path.join(root, split)
            if not tf.io.gfile.isdir(d):
                raise DataError(f"--raw_data_dir {raw_data_dir}: no {split}/ directory "
                                "(expected softmotion30_44k/train and softmotion30_44k/test).")
            files = sorted(os.path.join(d, f) for f in tf.io.gfile.listdir(d)
                           if not f.startswith(".") and not tf.io.gfile.isdir(os.path.join(d, f)))
            if not files:
                raise DataError(f"--raw_data_dir {raw_data_dir}: {d} is empty.")
            return files

        train, test = listing("train"), listing("test")
        if len(train) <= self.dev_files:
            raise DataError(f"--raw_data_dir {raw_data_dir}: {len(train)} train files; need more "
                            f"than {self.dev_files} (the last {self.dev_files} form dev).")
        return {"train": train[:-self.dev_files], "dev": train[-self.dev_files:], "test": test}

    def _raw_videos(self, files):
        """Yields (index, thunk -> (frames, floats)) for each video of `files`, in order."""
        counts = [scan_tfrecord(f) for f in files]   # validates framing, names the file
        total = sum(counts)
        yield total
        index = 0
        for path, count in zip(files, counts):
            for j, record in enumerate(iterate_records(path)):
                yield index, (lambda r=record, p=path, j=j:
                              parse_raw_bair_video(r, p, j, self.frame_shape))
                index += 1

    # -- TFDS source ------------------------------------------------------------------
    def _tfds_split(self, tfds_data_dir, split):
        import tensorflow_datasets as tfds
        builder = tfds.builder(TFDS_NAME, data_dir=tfds_data_dir)
        decoders = {"image_aux1": tfds.decode.SkipDecoding(),
                    "image_main": tfds.decode.SkipDecoding()}
        try:
            ds = builder.as_dataset(split=split, decoders=decoders, shuffle_files=False,
                                    read_config=tfds.ReadConfig(interleave_cycle_length=1))
        except (AssertionError, FileNotFoundError, ValueError) as e:
            where = tfds_data_dir or "TFDS's default data dir"
            raise DataError(
                f"TFDS dataset {TFDS_NAME} is not prepared in {where} "
                f"({str(e).splitlines()[0][:160]}). Prepare it with `tfds build {TFDS_NAME}` "
                "(about 30 GiB download) or pass --raw_data_dir with the original BAIR "
                "TFRecords.") from None
        return ds

    def _tfds_videos(self, tfds_data_dir, split):
        ds = self._tfds_split(tfds_data_dir, split)
        total = int(ds.cardinality())
        if total < 0:
            total = int(ds.reduce(np.int64(0), lambda n, _: n + 1))
        yield total
        for index, ex in enumerate(ds.as_numpy_iterator()):
            yield index, (lambda ex=ex: (list(ex["image_aux1"]), {
                "state": np.asarray(ex["endeffector_pos"], np.float32),
                "action": np.asarray(ex["action"], np.float32)}))

    # -- writing ----------------------------------------------------------------------
    def _write(self, source, assign, writers):
        """Streams (index, thunk) from `source`; `assign(i) -> (split, shard)`."""
        for index, thunk in source:
            split, shard = assign(index)
            writer = writers[split]
            if not writer.needed(shard):
                continue
            frames, floats = thunk()
            if isinstance(frames, list):   # PNG strings from TFDS
                shape = png_shape(frames[0])
                if shape != self.frame_shape:
                    raise DataError(f"TFDS {TFDS_NAME} video {index}: frames are {shape}, "
                                    f"expected {self.frame_shape}.")
                records = video_examples(encoded=frames, floats=floats)
            else:
                records = video_examples(encoded=[encode_png(f) for f in frames],
                                         floats=floats)
            writer.write_video(shard, records)

    def generate_data(self, data_dir, raw_data_dir=None, log=print, tfds_data_dir=None,
                      **kwargs):
        del kwargs
        log = log or (lambda msg: None)
        writers = {s: ShardSetWriter(self.shard_paths(data_dir, s), log=log,
                                     label=f"{self.name} {s}") for s in self.num_shards}
        summary = {}
        try:
            if raw_data_dir:
                files = self.raw_files(raw_data_dir)
                jobs = [(["train"], files["train"]), (["dev"], files["dev"]),
                        (["test"], files["test"])]
                plans = []
                for splits, split_files in jobs:
                    if writers[splits[0]].all_done:
                        continue
                    plans.append((splits[0], self._raw_videos(split_files)))
                for split, source in plans:
                    total = next(source)
                    n = self.num_shards[split]
                    if total < n:
                        raise DataError(f"{split} source files hold {total} videos, fewer "
                                        f"than its {n} shards.")
                    log(f"{self.name} {split}: {total} videos from {raw_data_dir}")
                    self._write(source, lambda i, s=split, n=n, t=total: (s, i * n // t),
                                writers)
                    writers[split].close_all()
                    summary[split] = dict(writers[split].stats(), videos=total)
            else:
                for tfds_split in ("train", "test"):
                    targets = ["train", "dev"] if tfds_split == "train" else ["test"]
                    if all(writers[s].all_done for s in targets):
                        continue
                    source = self._tfds_videos(tfds_data_dir, tfds_split)
                    total = next(source)
                    if tfds_split == "train":
                        n_train = total - self.dev_videos
                        if n_train < self.num_shards["train"]:
                            raise DataError(f"TFDS {TFDS_NAME} train has {total} videos; need "
                                            f"more than {self.dev_videos} (dev) + "
                                            f"{self.num_shards['train']}.")
                        n = self.num_shards["train"]

                        def assign(i, n=n, n_train=n_train):
                            return ("train", i * n // n_train) if i < n_train else ("dev", 0)
                        sizes = {"train": n_train, "dev": self.dev_videos}
                    else:
                        def assign(i):
                            return ("test", 0)
                        sizes = {"test": total}
                    log(f"{self.name}: {total} videos from TFDS {TFDS_NAME} {tfds_split}")
                    self._write(source, assign, writers)
                    for s in targets:
                        writers[s].close_all()
                        summary[s] = dict(writers[s].stats(), videos=sizes[s])
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        for s, w in writers.items():
            summary.setdefault(s, dict(w.stats(), videos=None))
        return summary

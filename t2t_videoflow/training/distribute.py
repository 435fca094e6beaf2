"""Choosing the `tf.distribute` strategy for a run.

  auto          MultiWorkerMirroredStrategy if TF_CONFIG names more than one task,
                else MirroredStrategy over all visible GPUs (if more than one),
                else OneDeviceStrategy on the one GPU or the CPU.
  one_device    OneDeviceStrategy on the first GPU or the CPU.
  mirrored      MirroredStrategy over all GPUs, or over all logical CPUs if no GPU
                (`num_cpu_devices` splits the CPU into that many logical devices;
                used for tests and for checking multi-replica code without GPUs).
  multi_worker  MultiWorkerMirroredStrategy (cluster from TF_CONFIG).
"""

import json
import os

import tensorflow as tf
from t2t_videoflow.errors import UsageError

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def tf_config():
    """The parsed TF_CONFIG environment variable ({} if unset).

    Raises:
      UsageError (one line) unless it is a JSON object whose "cluster" maps task
      types to lists of addresses and, when the cluster has tasks, whose "task"
      names one of them (a type of the cluster, an index below its task count).
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"TF_CONFIG is not valid JSON: {e}") from e
    _check_tf_config(config)
    return config


def _check_tf_config(config):
    def bad(problem):
        return UsageError(f"TF_CONFIG {problem}; set it like {TF_CONFIG_EXAMPLE} (or "
                          "unset it to train on this machine).")

    if not isinstance(config, dict):
        raise bad(f"must be a JSON object; got a {type(config).__name__} "
                  f"({json.dumps(config)[:60]})")
    cluster = config.get("cluster", {})
    if not isinstance(cluster, dict) or not all(
            isinstance(v, list) for v in cluster.values()):
        raise bad('"cluster" must be an object mapping task types to lists of '
                  f"addresses; got {json.dumps(cluster)[:60]}")
    if not any(cluster.values()):
        return
    if "task" not in config:
        raise bad('has no "task" (this process\'s place in the cluster)')
    task = config["task"]
    if not isinstance(task, dict):
        raise bad(f'"task" must be an object; got {json.dumps(task)[:60]}')
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise bad(f"task type {task_type!r} is not in the cluster (types: "
                  f"{', '.join(sorted(cluster))})")
    if isinstance(index, bool) or not isinstance(index, int):
        raise bad(f"task index must be an integer; got {json.dumps(index)[:60]}")
    if not 0 <= index < len(cluster[task_type]):
        raise bad(f"task index {index} is out of range: the cluster has "
                  f"{len(cluster[task_type])} {task_type} task(s) (index 0 to "
                  f"{len(cluster[task_type]) - 1})")


def num_workers_in_tf_config():
    cluster = tf_config().get("cluster", {})
    return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))


def split_cpu(num_devices):
    """Splits the physical CPU into `num_devices` logical devices (before TF starts)."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as e:
        raise RuntimeError("num_cpu_devices must be set before TensorFlow initialises "
                           f"its devices: {e}") from e


def make_strategy(name="auto", num_cpu_devices=None):
    """Returns the `tf.distribute.Strategy` for `name` (see module docstring)."""
    if name not in STRATEGIES:
        raise UsageError(f"Unknown strategy {name!r}; known: {', '.join(STRATEGIES)}.")
    if name == "auto" and num_workers_in_tf_config() > 1:
        name = "multi_worker"
    if name == "multi_worker":
        tf_config()                     # a bad TF_CONFIG is one line, not TF's traceback
        return tf.distribute.MultiWorkerMirroredStrategy()
    if num_cpu_devices and num_cpu_devices > 1:
        split_cpu(num_cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in gpus] or [
            d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


def strategy_name(strategy):
    """The public class name (MultiWorkerMirroredStrategy's class is an internal one)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def is_chief(strategy):
    """True on the task that writes checkpoints and summaries."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def worker_index(strategy):
    """`(num_workers, this_worker)` of the strategy's cluster ((1, 0) on one machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec:
        return 1, 0
    tasks = [(t, i) for t in ("chief", "worker") for i in range(len(spec.get(t, [])))]
    return len(tasks), tasks.index((resolver.task_type, resolver.task_id))


def worker_dir(output_dir, strategy):
    """Where this task writes checkpoints: `output_dir` on the chief, a scratch dir
    elsewhere (MultiWorkerMirroredStrategy needs every task to take part in saving)."""
    if is_chief(strategy):
        return output_dir
    resolver = strategy.cluster_resolver
    return os.path.join(output_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")

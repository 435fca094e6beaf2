"""Helpers shared by the benchmarks: medians, the conv peak, FLOP counts, results files.

Every benchmark prints a table and writes `benchmarks/results/NAME.json` with the
command that reproduces it, the machine, the library versions and the load average
before and after the timed part (the CPU is shared; a load well above the core count
means the figures are pessimistic).
"""

import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import tensorflow as tf

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# The reference conv for the CPU's peak rate: 3x3, [16, 32, 32, 128] -> 128 (about 11 ms,
# ~430 GFLOP/s fp32 with TF 2.21 on this project's 2-core AVX-512 machine kind).
PEAK_CONV_SHAPE = (16, 32, 32, 128, 128)


def time_calls(fn, warmup, repeats):
    """Runs `fn` `warmup` times untimed, then `repeats` times; returns the list of seconds.

    `fn` must block until its result is computed (e.g. end in `.numpy()`).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_time(fn, warmup, repeats):
    """Median seconds of `fn` over `repeats` calls after `warmup` calls."""
    return statistics.median(time_calls(fn, warmup, repeats))


def conv_peak_gflops(warmup=3, repeats=15):
    """The CPU's 3x3 conv rate (GFLOP/s, median) and the conv's median seconds."""
    n, h, w, c_in, c_out = PEAK_CONV_SHAPE
    x = tf.random.normal([n, h, w, c_in])
    kernel = tf.random.normal([3, 3, c_in, c_out])
    conv = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME"))
    seconds = median_time(lambda: conv().numpy(), warmup, repeats)
    return 2 * n * h * w * c_in * c_out * 9 / seconds / 1e9, seconds


# -- FLOP count of a traced graph ----------------------------------------------------

_CONV_FORWARD = ("Conv2D", "Conv3D", "DepthwiseConv2dNative")
_CONV_BACKPROP_INPUT = ("Conv2DBackpropInput", "Conv3DBackpropInputV2")
_CONV_BACKPROP_FILTER = ("Conv2DBackpropFilter", "Conv3DBackpropFilterV2")


def _static_shape(tensor):
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape):
        raise ValueError(f"FLOP count needs static shapes; {tensor.name} has {shape}.")
    return [int(d) for d in shape]


def _conv_flops(op):
    """2 x multiply-adds of a (forward or backprop) convolution op.

    Every conv op does `prod(output positions) * prod(kernel)` multiply-adds, where the
    output positions are those of the FORWARD conv (spatial dilation changes which
    inputs are read, not how many).
    """
    if op.type in _CONV_FORWARD:
        out = _static_shape(op.outputs[0])
        kernel = _static_shape(op.inputs[1])
    elif op.type in _CONV_BACKPROP_INPUT:
        out = _static_shape(op.inputs[2])  # out_backprop = the forward output
        kernel = _static_shape(op.inputs[1])
    else:  # backprop filter: inputs (input, filter_sizes, out_backprop)
        out = _static_shape(op.inputs[2])
        kernel = _static_shape(op.outputs[0])
    if op.type == "DepthwiseConv2dNative":
        return 2 * int(np.prod(out)) * int(np.prod(kernel[:-2]))
    return 2 * int(np.prod(out[:-1])) * int(np.prod(kernel))


def _matmul_flops(op):
    a, out = _static_shape(op.inputs[0]), _static_shape(op.outputs[0])
    transpose_a = op.get_attr("adj_x" if op.type.startswith("BatchMatMul") else
                              "transpose_a")
    inner = a[-2] if transpose_a else a[-1]
    return 2 * int(np.prod(out)) * inner


def _functions_called(op, library):
    """FuncGraphs of the functions `op` calls (PartitionedCall, If, While bodies ...)."""
    graphs = []
    for attr in op.node_def.attr.values():
        names = [attr.func.name] if attr.HasField("func") else [
            f.name for f in attr.list.func]
        graphs += [library[name] for name in names if name in library]
    return graphs


def graph_flops(graph):
    """FLOPs of the convolutions and matmuls in a traced `FuncGraph`, by op type.

    Counts 2 FLOPs per multiply-add for Conv2D/Conv3D (forward, backprop input,
    backprop filter), MatMul and BatchMatMul, from the static shapes in the graph,
    following calls into nested functions. Elementwise ops are not counted: the
    figure is the work a conv/matmul roofline allows for, and `GFLOP/s` derived from
    it is comparable with the conv peak.

    Returns: `{op_type: flops}`.
    """
    library = {}
    for fn in getattr(graph, "_functions", {}).values():
        fn_graph = getattr(fn, "graph", None)
        if fn_graph is not None:
            library[fn.name] = fn_graph
    totals = {}

    def walk(g):
        for op in g.get_operations():
            if op.type in _CONV_FORWARD + _CONV_BACKPROP_INPUT + _CONV_BACKPROP_FILTER:
                flops = _conv_flops(op)
            elif op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
                flops = _matmul_flops(op)
            else:
                flops = 0
                for sub in _functions_called(op, library):  # once per call site
                    walk(sub)
            if flops:
                totals[op.type] = totals.get(op.type, 0) + flops
        return totals

    walk(graph)
    return totals


# -- results --------------------------------------------------------------------------


def command_line():
    """The command that reproduces this run (from the repository root)."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]),
                             os.path.dirname(os.path.dirname(RESULTS_DIR)))
    return " ".join(["python", script, *sys.argv[1:]])


def machine():
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "processor": platform.processor() or platform.machine(),
            "tensorflow": tf.__version__,
            "devices": [d.device_type for d in tf.config.list_physical_devices()]}


def load_average():
    """1-minute load average (the CPU is shared with other jobs)."""
    return round(os.getloadavg()[0], 2)


def motion_sample_summary(row):
    """The figures the shapes results quote from one `samples` row of a
    `t2t-videoflow-motion` report: shares intact / intact and coherent / without a
    shape, directions represented, mean shape areas, and the bits the model gives its
    own samples."""
    motion = row["motion"]
    shares = motion["shares"]
    return {"intact": shares["intact"], "intact_coherent": shares["intact_coherent"],
            "no_shape": shares["no_shape"],
            "directions_represented": motion["uniformity"]["represented"],
            "mean_area_context": motion["mean_area_context"],
            "mean_area_samples": motion["mean_area_samples"],
            "own_samples_bpp": row["bpp"]}


def write_results(name, payload, path=None, indent=2):
    """Writes `payload` (plus command, machine) to `benchmarks/results/NAME.json`.

    `indent=None` writes compact JSON (for per-step curves that would pass 1 MB)."""
    path = path or os.path.join(RESULTS_DIR, f"{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    record = {"command": command_line(), **machine(), **payload}
    with open(path, "w") as f:
        json.dump(record, f, indent=indent)
    print(f"wrote {path}")
    return path


def run_json(command, cwd=None):
    """Runs `command` (a list); returns the dict on its last JSON stdout line.

    A line may start with `RESULT ` (the format of the T2T-side scripts `vs_t2t.py`
    runs, which live outside this repository). RuntimeError with the
    end of stderr if there is none.
    """
    import subprocess

    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        line = line.strip()
        if line.startswith("RESULT "):
            line = line[len("RESULT "):]
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{' '.join(command)} failed (rc {proc.returncode}):\n"
                       f"{proc.stderr[-3000:]}")


def print_table(header, rows):
    """Prints a fixed-width table; `rows` are lists of already formatted strings."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for line in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths))))


# -- the trainer's own training step, on in-memory clips -------------------------------

def smooth_clips(batch, frames, frame_shape, seed=0):
    """uint8 clips `[batch, frames, H, W, C]`: smooth random blobs plus a little noise
    (not white noise, so the loss and its gradients are realistic)."""
    h, w, c = frame_shape
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (batch, frames, max(h // 8, 1), max(w // 8, 1), c))
    video = np.repeat(np.repeat(coarse, h // coarse.shape[2], axis=2),
                      w // coarse.shape[3], axis=3)
    video += rng.normal(0, 8, video.shape)
    return np.clip(video, 0, 255).astype(np.uint8)


class SyntheticClipsProblem:
    """A stand-in problem whose train split is the same batch of `smooth_clips`,
    forever, at whatever batch size the trainer asks for (the global batch, a
    replica's share, the init batch). Lets a benchmark build the product's `Trainer`
    and time its `train_step` without data on disk."""

    name = "synthetic_clips"

    def __init__(self, frames, frame_shape, seed=0):
        self.frames, self.frame_shape, self.seed = frames, tuple(frame_shape), seed

    def dataset(self, mode, data_dir, hparams, input_context=None, **kwargs):
        del data_dir, kwargs
        if mode != "train":
            raise ValueError("SyntheticClipsProblem has only a train split.")
        batch = hparams.batch_size
        if input_context is not None:
            batch = input_context.get_per_replica_batch_size(batch)
        video = smooth_clips(batch, self.frames, self.frame_shape, self.seed)
        return tf.data.Dataset.from_tensors({"video": video}).repeat()


def make_trainer(hparams, workdir, jit_compile=False, seed=0, strategy=None,
                 initialize=True):
    """The trainer the `t2t-videoflow-trainer` command builds, for `hparams` on
    `SyntheticClipsProblem` clips, after its data-dependent init unless
    `initialize=False`. Its `train_step()` is the product's training step: the
    optimizer, noise and strategy are the trainer's own (`strategy` default: the
    command's `--strategy=auto`)."""
    from t2t_videoflow.training import distribute
    from t2t_videoflow.training import trainer as trainer_lib
    frames = trainer_lib.train_frames_per_clip(hparams)
    problem = SyntheticClipsProblem(
        frames, (hparams.frame_height, hparams.frame_width, hparams.frame_channels), seed)
    config = trainer_lib.TrainConfig(
        output_dir=workdir, data_dir=workdir, train_steps=10 ** 9, random_seed=seed,
        save_checkpoints_steps=10 ** 9, log_every_steps=10 ** 9, eval_sample_clips=0,
        jit_compile=jit_compile)
    trainer = trainer_lib.Trainer(problem, hparams, config,
                                  strategy=strategy or distribute.make_strategy("auto"),
                                  log=lambda message: None)
    if initialize:
        trainer.restore_or_initialize()
    return trainer

"""Op-level time table from a TF profiler trace (`tf.profiler.experimental` XPlane).

Reads the `*.xplane.pb` files under a log directory written by e.g.
`python benchmarks/train_step.py --configs=paper_b1 --modes=function --profile=DIR`
and sums, over the TF executor threads of the host plane, the wall time of every
op event, grouped by op type and by a coarse "where" category taken from the op's
name (coupling net, 1x1 conv, actnorm, prior, optimizer ...). Times are per traced
step (total / number of steps). Ops on different executor threads overlap, so the
column sums can exceed the step time.

    python benchmarks/profile_ops.py DIR [--top=25]
"""

import argparse
import collections
import glob
import os
import re

from tensorflow.tsl.profiler.protobuf import xplane_pb2

# (category, regex on the op name), first match wins.
CATEGORIES = [
    ("optimizer (Adam)", r"(^|/)(adam|Adam|optimizer)"),
    ("prior: conv3d_net", r"(latent_stack|conv3d|res_\d+_dil|res_final)"),
    ("prior: level/top heads", r"(level_prior|top_learn_prior|unconditional|single_conv)"),
    ("flow: coupling net", r"(^|/)nn(_\d+)?/"),
    ("flow: 1x1 conv", r"(invertible|MatMul|matrix|Inverse)"),
    ("flow: actnorm", r"actnorm"),
    ("flow: coupling (affine/additive)", r"(Sigmoid|sigmoid|Log|strided_slice|concat)"),
    ("dequantise / loss", r"(stateless|random|Normal|log_prob|Mean|truediv)"),
]


def load_events(logdir):
    """Yields (op name, op type, seconds) of every executor op event under `logdir`."""
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise FileNotFoundError(f"no *.xplane.pb under {logdir}")
    for path in paths:
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if ":" not in name or "::" in name:
                        continue
                    op_name, op_type = name.rsplit(":", 1)
                    yield op_name, op_type, event.duration_ps * 1e-12


def count_steps(logdir):
    """Number of `train` trace annotations (steps) in the trace, at least 1."""
    steps = 0
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            for line in plane.lines:
                if line.name == "python":
                    steps += sum(plane.event_metadata[e.metadata_id].name == "train"
                                 for e in line.events)
    return max(steps, 1)


def category(op_name, op_type):
    text = f"{op_name}:{op_type}"
    gradient = "gradient" in op_name.lower()
    for label, pattern in CATEGORIES:
        if re.search(pattern, text):
            return label + (" (grad)" if gradient and "Adam" not in label else "")
    return "other" + (" (grad)" if gradient else "")


def op_tables(logdir):
    """`(steps, {op_type: s/step}, {category: s/step}, {op_name: s/step})`."""
    steps = count_steps(logdir)
    by_type, by_category, by_name = (collections.Counter() for _ in range(3))
    for op_name, op_type, seconds in load_events(logdir):
        by_type[op_type] += seconds / steps
        by_category[category(op_name, op_type)] += seconds / steps
        by_name[f"{op_name} ({op_type})"] += seconds / steps
    return steps, by_type, by_category, by_name


def print_counter(title, counter, top):
    total = sum(counter.values())
    print(f"\n{title} (sum {total:.3f} s/step)")
    for key, seconds in counter.most_common(top):
        print(f"  {seconds:9.4f} s  {100 * seconds / total:5.1f}%  {key}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    steps, by_type, by_category, by_name = op_tables(args.logdir)
    print(f"{args.logdir}: {steps} traced steps")
    print_counter("by op type", by_type, args.top)
    print_counter("by category", by_category, args.top)
    print_counter("by op", by_name, args.top)


if __name__ == "__main__":
    main()

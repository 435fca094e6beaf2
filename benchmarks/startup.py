"""Benchmark: where the start-up of a training run goes (issue 14's start-up target).

From process start to the end of the first compiled training step of a config of
`benchmarks/train_step.py`, split into: imports, model build, data-dependent init
(eager), tracing the step (`get_concrete_function`: Python, forward and gradient
graph, Adam), the first call (graph optimisation by grappler, kernel set-up, one
step) and, for scale, the second call. Each variant runs in a fresh process, since
grappler's options are process-wide:

  * `default`: TF's defaults (what the trainer uses),
  * `no_grappler`: `tf.config.optimizer.set_experimental_options(
    {"disable_meta_optimizer": True})`, to show grappler's share.

    python benchmarks/startup.py                         # paper_b1, both variants
    python benchmarks/startup.py --configs=cpu_small

Writes `benchmarks/results/startup.json`. One process: `--child=CONFIG --variant=V`.
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = {"default": {}, "no_grappler": {"disable_meta_optimizer": True}}


def child(config, variant):
    import tensorflow as tf

    sys.path.insert(0, HERE)
    import train_step

    tf.config.optimizer.set_experimental_options(VARIANTS[variant])
    times = {"imports_s": time.perf_counter() - START}

    def lap(name, since):
        times[name] = time.perf_counter() - since
        return time.perf_counter()

    hp = train_step.CONFIGS[config]()
    _, _, num_context, frame_shape = train_step.clip_spec(hp)
    t = time.perf_counter()
    model = train_step.build_model(hp, frame_shape, seed=0)
    t = lap("build_s", t)
    video = train_step.make_video(hp, 0)
    model.data_init(video)
    t = lap("data_init_s", t)
    variables = model.trainable_variables
    optimizer = train_step.make_optimizer(hp)
    optimizer.build(variables)
    step = train_step.train_step_fn(model, variables, optimizer, video, num_context,
                                    "function")
    step.get_concrete_function(tf.constant([1, 0]))
    t = lap("trace_s", t)
    float(step(tf.constant([1, 0])))
    times["to_first_step_s"] = time.perf_counter() - START
    t = lap("first_call_s", t)
    float(step(tf.constant([2, 0])))
    lap("second_call_s", t)
    print(json.dumps(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="paper_b1")
    parser.add_argument("--variants", default="default,no_grappler")
    parser.add_argument("--output", default="", help="results json (default: "
                        "benchmarks/results/startup.json; '-' to skip)")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="default", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.variant)
        return
    sys.path.insert(0, HERE)
    import common

    results = {"load_average_start": common.load_average(), "configs": {}}
    keys = ["imports_s", "build_s", "data_init_s", "trace_s", "first_call_s",
            "to_first_step_s", "second_call_s"]
    rows = []
    for config in args.configs.split(","):
        results["configs"][config] = {}
        for variant in args.variants.split(","):
            times = common.run_json([sys.executable, os.path.abspath(__file__),
                                     f"--child={config}", f"--variant={variant}"])
            results["configs"][config][variant] = times
            rows.append([config, variant, *(f"{times[k]:.1f}" for k in keys)])
            print(" ".join(rows[-1]), flush=True)
    results["load_average_end"] = common.load_average()
    common.print_table(["config", "variant", *(k[:-2] + " s" for k in keys)], rows)
    if args.output != "-":
        common.write_results("startup", results, args.output or None)


if __name__ == "__main__":
    main()

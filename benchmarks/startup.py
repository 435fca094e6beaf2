"""Benchmark: where the start-up of a training run goes (results:
`benchmarks/results/startup.json`).

From process start to the end of the first training step of the trainer
(`Trainer.train_step`, on in-memory clips: `benchmarks/common.make_trainer`) for a
config of `benchmarks/train_step.py`, split into: imports, building the trainer (model,
Adam slots, input), data-dependent init (eager, one batch), tracing the step (Python,
forward and gradient graph, Adam), the first call (graph optimisation by grappler,
executor and kernel set-up, one step), then the median of `--steps` further steps, so
that a variant that starts faster but steps slower shows both. Each variant runs in a
fresh process (grappler's options are process-wide); `--rounds` alternates them:

  * `default`: what the trainer does,
  * `no_grappler`: `tf.config.optimizer.set_experimental_options(
    {"disable_meta_optimizer": True})`, to show grappler's share,
  * `loop_flow_steps`: the hparam `loop_flow_steps=True` (each flow level's steps as
    one `tf.while_loop`: a graph of one step per level instead of K),
  * `loop_no_grappler`: both (the trainer's `--nograph_optimizer` with the hparam).

    python benchmarks/startup.py                         # paper_b1, all variants
    python benchmarks/startup.py --configs=cpu_small --rounds=3 --steps=15

Writes `benchmarks/results/startup.json`: every run, and per config and variant the
median over rounds of each figure. One process: `--child=CONFIG --variant=V`.
"""

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# variant -> (grappler options, hparam overrides)
VARIANTS = {
    "default": ({}, {}),
    "no_grappler": ({"disable_meta_optimizer": True}, {}),
    "loop_flow_steps": ({}, {"loop_flow_steps": True}),
    "loop_no_grappler": ({"disable_meta_optimizer": True}, {"loop_flow_steps": True}),
}
KEYS = ["imports_s", "build_s", "data_init_s", "trace_s", "first_call_s",
        "to_first_step_s", "step_s"]


def child(config, variant, steps):
    import tensorflow as tf

    sys.path.insert(0, HERE)
    import common
    import train_step

    grappler, overrides = VARIANTS[variant]
    tf.config.optimizer.set_experimental_options(grappler)
    times = {"imports_s": time.perf_counter() - START}

    def lap(name, since):
        times[name] = time.perf_counter() - since
        return time.perf_counter()

    hp = train_step.CONFIGS[config]()
    for key, value in overrides.items():
        setattr(hp, key, value)
    hp.init_batch_size = hp.batch_size    # DDI on one batch
    t = time.perf_counter()
    trainer = common.make_trainer(hp, tempfile.mkdtemp(prefix="startup_"),
                                  initialize=False)          # model, Adam slots, data
    t = lap("build_s", t)
    trainer.restore_or_initialize()
    t = lap("data_init_s", t)
    graph = trainer.train_step_graph()
    t = lap("trace_s", t)
    times["graph_ops"] = len(graph.get_operations())
    float(trainer.train_step()["bpp"])
    times["to_first_step_s"] = time.perf_counter() - START
    lap("first_call_s", t)
    step_times = []
    for _ in range(steps):
        t = time.perf_counter()
        float(trainer.train_step()["bpp"])
        step_times.append(time.perf_counter() - t)
    times["step_times_s"] = step_times
    times["step_s"] = statistics.median(step_times)
    print(json.dumps(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="paper_b1")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the variants this many times")
    parser.add_argument("--steps", type=int, default=3,
                        help="steps timed after the first (median reported)")
    parser.add_argument("--output", default="", help="results json (default: "
                        "benchmarks/results/startup.json; '-' to skip)")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="default", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.variant, args.steps)
        return
    sys.path.insert(0, HERE)
    import common

    variants = args.variants.split(",")
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r}; expected some of {list(VARIANTS)}")
    results = {"load_average_start": common.load_average(), "optimizer": "fused",
               "runs": [], "medians": {}}
    for config in args.configs.split(","):
        for round_index in range(args.rounds):
            for variant in variants:
                times = common.run_json([
                    sys.executable, os.path.abspath(__file__), f"--child={config}",
                    f"--variant={variant}",
                    f"--steps={args.steps}"])
                results["runs"].append({"config": config, "variant": variant,
                                        "round": round_index, **times})
                print(config, variant, round_index,
                      " ".join(f"{k}={times[k]:.2f}" for k in KEYS), flush=True)
    rows = []
    for config in args.configs.split(","):
        results["medians"][config] = {}
        for variant in variants:
            runs = [r for r in results["runs"]
                    if r["config"] == config and r["variant"] == variant]
            medians = {k: statistics.median(r[k] for r in runs) for k in KEYS}
            medians["graph_ops"] = runs[0]["graph_ops"]
            results["medians"][config][variant] = medians
            rows.append([config, variant, str(medians["graph_ops"]),
                         *(f"{medians[k]:.{3 if k == 'step_s' else 1}f}" for k in KEYS)])
    results["load_average_end"] = common.load_average()
    common.print_table(["config", "variant", "graph ops",
                        *(k[:-2] + " s" for k in KEYS)], rows)
    if args.output != "-":
        common.write_results("startup", results, args.output or None)


if __name__ == "__main__":
    main()

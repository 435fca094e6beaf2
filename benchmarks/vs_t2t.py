"""Benchmark: the port's training step against the ORIGINAL T2T code, side by side.

Absolute step times on these shared machines drift by 2x from day to day, so only
ratios measured in one sitting mean anything. This script alternates, round after
round, fresh processes of

  * T2T's own `NextFrameGlow` training step (`bench.py` of a T2T harness directory
    that is not part of this repository, named by `$T2T_ORACLE_HARNESS`, run with a venv holding tensor2tensor at
    `$T2T_ORACLE_HOME/venv/bin/python`),
  * the port's training step: the trainer's own `Trainer.train_step` (its fused
    legacy Adam, one op per variable as T2T's, its noise and strategy) on
    `benchmarks/common.SyntheticClipsProblem` clips (results recorded before the
    benchmark called the trainer timed a copy of the step), once per `--network_dtypes`
    entry ("float32" is T2T's arithmetic; "bfloat16" runs the coupling networks and
    the conv3d_net prior blocks in bfloat16),

on the same config (`cpu_small`, `paper_b1`: as `benchmarks/train_step.py` defines them, the
same in both codes), and reports for each the median step time per run, the median over
runs, the ratio T2T / port of the medians (> 1: the port is faster), the start-up
time (process start to the end of the first training step: imports, graph build
or tracing, data-dependent init, first step) and the peak process memory (RSS).
The 3x3 conv rate of the CPU (`common.conv_peak_gflops`) is measured in each port
run, so every result carries the fraction of the conv peak it reaches.

    python benchmarks/vs_t2t.py                                  # both configs
    python benchmarks/vs_t2t.py --configs=cpu_small --rounds=5
    python benchmarks/vs_t2t.py --configs=paper_b1 --rounds=2 --t2t_steps=6 --steps=6

Writes `benchmarks/results/vs_t2t.json`. Child mode (one port run, JSON on the last
stdout line): `python benchmarks/vs_t2t.py --child=cpu_small --network_dtype=float32`.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

START = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HARNESS = os.environ.get("T2T_ORACLE_HARNESS", "")
T2T_PYTHON = os.path.join(
    os.environ.get("T2T_ORACLE_HOME", os.path.expanduser("~/.cache/t2t-oracle")),
    "venv", "bin", "python")


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(config, network_dtype, warmup, steps, graph_optimizer=True):
    """One port run in this process; prints a JSON line."""
    import tensorflow as tf

    if not graph_optimizer:   # as the trainer's --nograph_optimizer
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

    sys.path.insert(0, HERE)
    import common
    import train_step

    hp = train_step.CONFIGS[config]()
    hp.network_dtype = network_dtype
    hp.init_batch_size = hp.batch_size     # DDI on one batch, as T2T's bench.py
    trainer = common.make_trainer(hp, tempfile.mkdtemp(prefix="vs_t2t_"))
    step = lambda: float(trainer.train_step()["bpp"])   # noqa: E731  (the product's)
    step()
    startup = time.perf_counter() - START
    times = common.time_calls(step, warmup, steps)
    flops = sum(common.graph_flops(trainer.train_step_graph()).values())
    peak, _ = common.conv_peak_gflops()
    median = statistics.median(times)
    print(json.dumps({
        "median_s": median, "step_s": times, "startup_s": startup,
        "peak_rss_mib": peak_rss_mib(), "gflop_per_step": flops / 1e9,
        "conv_peak_gflops": peak, "fraction_of_conv_peak": flops / median / 1e9 / peak,
        "load_average": common.load_average()}))


def run_json(command, cwd):
    sys.path.insert(0, HERE)
    import common

    return common.run_json(command, cwd)


def t2t_run(config, warmup, steps):
    result = run_json([T2T_PYTHON, "bench.py", "--config", config, "--warmup",
                       str(warmup), "--steps", str(steps), "--min_steps", str(steps)],
                      HARNESS)
    # Command to the end of the first step, as the port's: build + DDI + first step
    # (the T2T venv's imports are not timed by bench.py; they are a few seconds).
    result["startup_s"] = result["build_s"] + result["ddi_s"] + result["warmup_s"][0]
    return result


def port_run(config, network_dtype, warmup, steps, graph_optimizer=True):
    return run_json([sys.executable, os.path.abspath(__file__), f"--child={config}",
                     f"--network_dtype={network_dtype}", f"--warmup={warmup}",
                     f"--steps={steps}", f"--graph_optimizer={graph_optimizer}"], ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="cpu_small,paper_b1")
    parser.add_argument("--network_dtypes", default="float32,bfloat16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed port steps per run")
    parser.add_argument("--t2t_warmup", type=int, default=3)
    parser.add_argument("--t2t_steps", type=int, default=10)
    parser.add_argument("--graph_optimizer", default="True", choices=["True", "False"],
                        help="False: the port's runs without grappler, as the trainer's "
                        "--nograph_optimizer (T2T's run is unchanged)")
    parser.add_argument("--output", default="", help="results json (default: "
                        "benchmarks/results/vs_t2t.json; '-' to skip)")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--network_dtype", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.network_dtype, args.warmup, args.steps,
              args.graph_optimizer == "True")
        return
    if not HARNESS or not os.path.isfile(os.path.join(HARNESS, "bench.py")):
        sys.exit("Set T2T_ORACLE_HARNESS to a T2T harness directory (its bench.py runs "
                 "T2T's NextFrameGlow step; it is not part of this repository).")
    if not os.path.exists(T2T_PYTHON):
        sys.exit(f"No T2T venv at {T2T_PYTHON}: build it with "
                 f"{os.path.normpath(HARNESS)}/setup.sh T2T_GIT_DIR "
                 "(or set T2T_ORACLE_HOME).")

    sys.path.insert(0, HERE)
    import common

    results = {"load_average_start": common.load_average(),
               "port_graph_optimizer": args.graph_optimizer == "True", "configs": {}}
    rows = []
    for config in args.configs.split(","):
        runs = {"t2t": []}
        runs.update({f"port_{d}": [] for d in args.network_dtypes.split(",")})
        for r in range(args.rounds):
            for name in runs:
                if name == "t2t":
                    res = t2t_run(config, args.t2t_warmup, args.t2t_steps)
                else:
                    res = port_run(config, name[len("port_"):], args.warmup, args.steps,
                                   args.graph_optimizer == "True")
                runs[name].append(res)
                print(f"{config} round {r} {name}: median {res['median_s']:.4f} s/step, "
                      f"start-up {res['startup_s']:.1f} s, peak RSS "
                      f"{res['peak_rss_mib']:.0f} MiB", flush=True)
        t2t_median = statistics.median(x["median_s"] for x in runs["t2t"])
        entry = {}
        for name, items in runs.items():
            median = statistics.median(x["median_s"] for x in items)
            # Per-round ratios too: each compares runs minutes apart.
            round_ratios = [t["median_s"] / x["median_s"] for t, x in zip(runs["t2t"], items)]
            entry[name] = {
                "median_step_s": median, "run_medians_s": [x["median_s"] for x in items],
                "t2t_over_this": t2t_median / median, "round_ratios": round_ratios,
                "startup_s": statistics.median(x["startup_s"] for x in items),
                "peak_rss_mib": max(x["peak_rss_mib"] for x in items),
                "fraction_of_conv_peak": statistics.median(
                    x["fraction_of_conv_peak"] for x in items)
                if "fraction_of_conv_peak" in items[0] else None,
                "conv_peak_gflops": statistics.median(
                    x["conv_peak_gflops"] for x in items)
                if "conv_peak_gflops" in items[0] else None,
                "runs": items}
            frac = entry[name]["fraction_of_conv_peak"]
            rows.append([config, name, f"{median:.4f}", f"{t2t_median / median:.2f}x",
                         " ".join(f"{v:.2f}" for v in round_ratios),
                         f"{entry[name]['startup_s']:.1f}",
                         f"{entry[name]['peak_rss_mib']:.0f}",
                         "-" if frac is None else f"{100 * frac:.0f}%"])
        results["configs"][config] = entry
    results["load_average_end"] = common.load_average()
    print()
    common.print_table(["config", "code", "median step s", "T2T / this", "per round",
                        "start-up s", "peak RSS MiB", "% conv peak"], rows)
    if args.output != "-":
        common.write_results("vs_t2t", results, args.output or None)


if __name__ == "__main__":
    main()

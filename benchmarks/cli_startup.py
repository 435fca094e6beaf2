"""Benchmark: the trainer command's start-up, to the end of its first training step.

`benchmarks/startup.py` times the pieces of start-up (build, data-dependent init,
tracing, first call) with the benchmark's own step. This runs the real command: the
paper model (videoflow_bpp, 3 context + 1 target frame, batch 1, one clip for
data-dependent init, i.e. paper_b1) trained for 2 steps on `shapes_64_small` (64x64
shapes, 64 videos: `benchmarks/usr_shapes64`, generated into --data_dir first, not
timed). It reads the seconds from the command's start at which the trainer prints:

  * `allocator`: its CPU allocator line (imports and flag checks done),
  * `ddi`: "Triggering data-dependent init" (model, optimizer and input pipeline built),
  * `first_step`: the first step's progress line (the start-up target),
  * `second_step`: the second's.

    python benchmarks/cli_startup.py --rounds=3
    python benchmarks/cli_startup.py --rounds=3 --code=/tmp/old_tree,.   # alternate trees
    python benchmarks/cli_startup.py --options= --hparams=         # the trainer's defaults

`--code` lists source trees put first on PYTHONPATH, one run each per round. Writes
`benchmarks/results/cli_startup.json` (every run; per tree the medians).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

PROBLEM = "shapes_64_small"
USR_DIR = os.path.join(HERE, "usr_shapes64")
PAPER_B1 = ("video_num_input_frames=3,video_num_target_frames=1,num_train_frames=4,"
            "batch_size=1,init_batch_size=1")
MARKS = {"allocator": "CPU allocator", "ddi": "Triggering data-dependent init",
         "first_step": "step 1/2 ", "second_step": "step 2/2 "}


def tool(name):
    return os.path.join(os.path.dirname(sys.executable), f"t2t-videoflow-{name}")


def one_run(code, data_dir, options, hparams):
    """Seconds from the command's start to each line of MARKS (None if not printed)."""
    output_dir = tempfile.mkdtemp(prefix="cli_startup_")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(code))
    hparams = ",".join(h for h in (PAPER_B1, hparams) if h)
    cmd = [tool("trainer"), f"--problem={PROBLEM}", f"--t2t_usr_dir={USR_DIR}",
           "--hparams_set=videoflow_bpp", f"--hparams={hparams}", *options.split(),
           f"--data_dir={data_dir}", f"--output_dir={output_dir}", "--schedule=train",
           "--train_steps=2", "--log_every_steps=1"]
    times = dict.fromkeys(MARKS)
    start = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, env=env) as proc:
        for line in proc.stdout:
            for key, mark in MARKS.items():
                if times[key] is None and mark in line:
                    times[key] = time.perf_counter() - start
    shutil.rmtree(output_dir, ignore_errors=True)
    if proc.returncode != 0 or times["first_step"] is None:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode})")
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", default=".", help="comma-separated source trees")
    parser.add_argument("--options", default="--nograph_optimizer",
                        help="trainer flags (default: grappler off)")
    parser.add_argument("--hparams", default="loop_flow_steps=true",
                        help="overrides on top of paper_b1's")
    parser.add_argument("--data_dir", default="", help="default: a temporary dir")
    parser.add_argument("--output", default="", help="results json (default: "
                        "benchmarks/results/cli_startup.json; '-' to skip)")
    args = parser.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="shapes_64_small_")
    subprocess.run([tool("datagen"), f"--problem={PROBLEM}", f"--t2t_usr_dir={USR_DIR}",
                    f"--data_dir={data_dir}"], check=True, capture_output=True)
    codes = args.code.split(",")
    results = {"load_average_start": common.load_average(), "options": args.options,
               "hparams": ",".join(h for h in (PAPER_B1, args.hparams) if h),
               "runs": [], "medians": {}}
    for round_index in range(args.rounds):
        for code in codes:
            times = one_run(code, data_dir, args.options, args.hparams)
            results["runs"].append({"code": code, "round": round_index, **times})
            print(code, round_index, " ".join(
                f"{k}={v:.1f}" for k, v in times.items() if v is not None), flush=True)
    rows = []
    for code in codes:
        runs = [r for r in results["runs"] if r["code"] == code]
        medians = {k: statistics.median(r[k] for r in runs)
                   for k in MARKS if all(r[k] is not None for r in runs)}
        results["medians"][code] = medians
        rows.append([code, *(f"{medians[k]:.1f}" if k in medians else "-" for k in MARKS)])
    results["load_average_end"] = common.load_average()
    common.print_table(["code", *(k + " s" for k in MARKS)], rows)
    if not args.data_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.output != "-":
        common.write_results("cli_startup", results, args.output or None)


if __name__ == "__main__":
    main()

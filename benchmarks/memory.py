"""Benchmark: peak memory of a training step vs flow depth, plain vs recomputed backprop.

Model: `videoflow_bpp` (64x64x3, 3 levels, affine coupling width 512, GATU; conv3d_net
prior 5 blocks x 256, dilations, latent skip), batch 1, a window of 3 context frames +
1 target (the paper's 4-frame training window), `depth` steps per level.

Each configuration runs in a fresh subprocess that
  1. builds the product's `Trainer` (`common.make_trainer`: the model, the fused
     legacy Adam and its slots, the per-clip noise, the default strategy) on in-memory
     clips and runs its data-dependent init on one batch (the paper uses 128 clips; one
     keeps this cheap); results recorded before the benchmark called the trainer
     (before this file's `Trainer.train_step` version) timed a copy of the step;
  2. records the BASELINE: resident set size (RSS, /proc/self/statm) after
     `malloc_trim` (TF runtime, weights, Adam slots; no graph yet), and the bytes in use
     in TF's CPU allocator (`tf.config.experimental.get_memory_info`);
  3. traces and runs the first training step, then `malloc_trim`, resets the kernel's
     peak-RSS counter (`echo 5 > /proc/self/clear_refs`; VmHWM = getrusage's
     ru_maxrss on Linux) and TF's allocator peak (`reset_memory_stats`);
  4. times `repeats` more steps (median) and reads both peaks.
A training step is one call of `Trainer.train_step()`, the step the trainer runs.

Fields (MB = MiB):
  steady_peak_mb   peak RSS of the process during steady training steps: everything,
                   including TF's graph/executor memory kept after the first step;
  step_mb          steady_peak_mb - baseline_mb;
  tf_peak_mb       peak bytes in use in TF's CPU allocator during steady steps: all
                   tensors (weights, Adam slots, activations, gradients, temporaries),
                   i.e. what an accelerator's memory would have to hold;
  tf_step_mb       tf_peak_mb - tensors in use at baseline: the step's activations,
                   gradients and temporaries. Recomputation acts on this part.
  after_trace_mb, after_first_step_mb: RSS after tracing and after the first step.

Options that act on memory:
  --loop          `loop_flow_steps=True`: each flow level, and with recomputation its
                  backward pass, runs as a `tf.while_loop`, so the graph TF keeps in
                  memory is far smaller;
  --graph_optimizer=0  grappler off (the trainer's `--nograph_optimizer`);
  --hparams       overrides of `videoflow_bpp`, e.g. `network_dtype=bfloat16`;
  --cpu_allocator the tools' `--cpu_allocator` (default: theirs). "bfc", TF's pool,
                  keeps every page a step has used; "system" (malloc, 2 glibc arenas)
                  gives freed tensors back, and keeps no statistics: the tf_* fields are
                  None; "auto" is the trainer's choice (system with recomputation).
                  Results before 2026-12-06's `cpu_allocator` field are "bfc"; the
                  `cpu_allocator_flag` field (the flag as given) came later.

The saved memory is then spent on a longer training window: depth 24 with
recomputation at `--windows` frames (3 context + N-3 targets, all N frames encoded).
`--flow_only_depths` repeats plain vs recompute for the unconditional model (the flow
plus marginal priors, no conv3d prior network), where the flow is all the activations.

Reproduce (about 90 minutes on 2 shared CPU cores; each config builds and traces a
graph of tens of thousands of ops, the first step takes 2-9 minutes):

    python benchmarks/memory.py                       # all batch-1 configs
    python benchmarks/memory.py --depths= --windows= --batch=4 --append
                                             # + unconditional depth 24 at batch 4
    python benchmarks/memory.py --depths=4 --windows= --flow_only_depths= \
        --repeats=2 --out=/tmp/memory.json                       # quick check

Timings are noisy on a shared machine: the 1-minute load average is recorded per
config (`loadavg_1min`, `loadavg_1min_before`).
"""

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time

START = time.perf_counter()
RESULTS = os.path.join(os.path.dirname(__file__), "results", "memory.json")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_rss_bytes():
    """VmHWM (= ru_maxrss), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def malloc_trim():
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def source_md5():
    """md5 of the package's .py files: which code state a result was measured on."""
    import hashlib
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "t2t_videoflow")
    digest = hashlib.md5()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def worker(args):
    """One configuration in this process; prints one JSON line."""
    from t2t_videoflow.cli import tool as cli
    allocator = args.cpu_allocator
    if allocator == "auto":   # the trainer's choice for this run
        allocator = cli.auto_cpu_allocator(bool(args.recompute))
    cli.use_cpu_allocator(allocator)  # before TensorFlow, as the tools do
    import numpy as np
    import tensorflow as tf

    if not args.graph_optimizer:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

    import tempfile
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common
    from t2t_videoflow.config import registry

    hp = registry.create_hparams("videoflow_bpp", args.hparams)
    hp.depth = args.depth
    hp.memory_efficient_backprop = bool(args.recompute)
    hp.batch_size = hp.init_batch_size = args.batch   # DDI on one batch, as before
    hp.gen_mode = args.gen_mode
    hp.loop_flow_steps = bool(args.loop)
    hp.num_train_frames = args.frames                 # the training window
    # The trainer's own step (its optimizer, noise and strategy) on in-memory clips.
    trainer = common.make_trainer(hp, tempfile.mkdtemp(prefix="memory_"))
    variables = trainer.variables

    def train_step():
        return float(trainer.train_step()["bpp"])

    malloc_trim()
    baseline = rss_bytes()
    tf_baseline = tf.config.experimental.get_memory_info("CPU:0")["current"]
    start = time.perf_counter()
    trainer.train_step_graph()
    trace_s = time.perf_counter() - start
    after_trace = rss_bytes()
    first_loss = train_step()
    first_step_s = time.perf_counter() - start
    first_step_done = time.perf_counter()
    first_peak = peak_rss_bytes()
    tf_first_peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    malloc_trim()
    after_first = rss_bytes()
    reset_peak_rss()
    tf.config.experimental.reset_memory_stats("CPU:0")
    times, losses = [], []
    for i in range(args.repeats):
        start = time.perf_counter()
        losses.append(train_step())
        times.append(time.perf_counter() - start)
    steady_peak = peak_rss_bytes()
    tf_peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    out = dict(depth=args.depth, recompute=bool(args.recompute), unit="level",
               loop=bool(args.loop), graph_optimizer=bool(args.graph_optimizer),
               hparams=args.hparams,
               optimizer="fused", cpu_allocator=allocator,
               cpu_allocator_flag=args.cpu_allocator,
               start_to_first_step_s=first_step_done - START,
               process_peak_mb=max(first_peak, steady_peak) / 2**20,
               gen_mode=args.gen_mode, batch=args.batch,
               frames=args.frames, repeats=args.repeats,
               params=int(sum(np.prod(v.shape) for v in variables)),
               baseline_mb=baseline / 2**20, first_step_peak_mb=first_peak / 2**20,
               steady_peak_mb=steady_peak / 2**20,
               step_mb=(steady_peak - baseline) / 2**20,
               after_trace_mb=after_trace / 2**20,
               after_first_step_mb=after_first / 2**20,
               transient_mb=(steady_peak - after_first) / 2**20,
               **tf_statistics(allocator, tf_baseline, tf_peak, tf_first_peak),
               trace_s=trace_s, first_step_s=first_step_s, median_step_s=statistics.median(times),
               step_times_s=times, first_loss=first_loss, losses=losses,
               loadavg_1min=os.getloadavg()[0], source_md5=source_md5())
    print("RESULT " + json.dumps(out), flush=True)


def cpu_allocator_choices():
    """The tools' `--cpu_allocator` values and default (no TensorFlow imported)."""
    from t2t_videoflow.cli import tool as cli
    return list(cli.CPU_ALLOCATORS), cli.FLAGS["cpu_allocator"].default


def tf_statistics(cpu_allocator, baseline, peak, first_peak):
    """TF's tensor-byte columns in MB; None under the system allocator, which keeps
    no statistics (`get_memory_info` reads 0)."""
    if cpu_allocator != "bfc":
        return dict(tf_baseline_mb=None, tf_peak_mb=None, tf_first_step_peak_mb=None,
                    tf_step_mb=None)
    return dict(tf_baseline_mb=baseline / 2**20, tf_peak_mb=peak / 2**20,
                tf_first_step_peak_mb=first_peak / 2**20,
                tf_step_mb=(peak - baseline) / 2**20)


def run_config(depth, recompute, frames, repeats, gen_mode, batch=1, loop=False,
               graph_optimizer=True, hparams="", cpu_allocator="bfc"):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"--depth={depth}",
           f"--loop={int(loop)}", f"--graph_optimizer={int(graph_optimizer)}",
           f"--hparams={hparams}", f"--cpu_allocator={cpu_allocator}",
           f"--recompute={int(recompute)}", f"--frames={frames}", f"--repeats={repeats}",
           f"--gen_mode={gen_mode}", f"--batch={batch}"]
    load_before = os.getloadavg()[0]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"config depth={depth} recompute={recompute} failed:\n"
                           f"{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["loadavg_1min_before"] = load_before
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--recompute", type=int, default=0)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--gen_mode", default="conditional")
    parser.add_argument("--batch", type=int, default=1,
                        help="clips per step (worker; and the --flow_only_depths runs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--depths", default="4,8,16,24")
    parser.add_argument("--deep_repeats", type=int, default=2,
                        help="repeats at depth >= 16 (steps take seconds each)")
    parser.add_argument("--windows", default="8,12",
                        help="window lengths for depth 24 with recomputation")
    parser.add_argument("--flow_only_depths", default="24",
                        help="depths for the unconditional model (flow + marginal priors)")
    parser.add_argument("--hparams", default="",
                        help="overrides of videoflow_bpp, e.g. network_dtype=bfloat16")
    parser.add_argument("--graph_optimizer", type=int, default=1,
                        help="0: grappler off, as the trainer's --nograph_optimizer")
    parser.add_argument("--loop", type=int, default=0,
                        help="1: loop_flow_steps=True (module docstring)")
    allocators, default_allocator = cpu_allocator_choices()
    parser.add_argument("--cpu_allocator", default=default_allocator, choices=allocators,
                        help="the tools' --cpu_allocator (default: theirs); TF's tensor "
                             "statistics (tf_* columns) exist only under bfc")
    parser.add_argument("--append", action="store_true",
                        help="add to the results already in --out")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    results, commands = [], []
    if args.append and os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        results = old["results"]
        commands = old.get("commands", [old.get("command")])
        settings = {(r.get("loop", False), r.get("graph_optimizer", True),
                     r.get("hparams", ""),
                     r.get("cpu_allocator_flag", r.get("cpu_allocator", "bfc")))
                    for r in results}
        if settings - {(bool(args.loop), bool(args.graph_optimizer), args.hparams,
                        args.cpu_allocator)}:
            parser.error(f"{args.out} holds runs with other --loop/--graph_optimizer/"
                         "--hparams/--cpu_allocator settings; write these to another --out")
    commands.append("python " + " ".join(sys.argv))

    def run(depth, recompute, frames=4, gen_mode="conditional", batch=1):
        repeats = args.deep_repeats if depth >= 16 else args.repeats
        r = run_config(depth, recompute, frames, repeats, gen_mode, batch,
                       args.loop, args.graph_optimizer, args.hparams, args.cpu_allocator)
        results.append(r)
        print(f"{gen_mode} batch {batch} depth {depth:2d} recompute {str(recompute):5s} "
              f"frames {frames:2d}: baseline {r['baseline_mb']:7.0f} MB  steady peak "
              f"{r['steady_peak_mb']:7.0f} MB  step {r['step_mb']:7.0f} MB  "
              f"process peak {r['process_peak_mb']:7.0f} MB  "
              f"median step {r['median_step_s']:6.2f} s  (load {r['loadavg_1min']:.1f})",
              flush=True)
        write(args.out, results, commands)

    depths = [int(d) for d in args.depths.split(",") if d]
    for depth in depths:
        run(depth, False)
        run(depth, True)
    for frames in [int(w) for w in args.windows.split(",") if w]:
        run(max(depths) if depths else 24, True, frames=frames)
    for depth in [int(d) for d in args.flow_only_depths.split(",") if d]:
        run(depth, False, gen_mode="unconditional", batch=args.batch)
        run(depth, True, gen_mode="unconditional", batch=args.batch)
    write(args.out, results, commands, show=True)


def _key(r):
    return (r.get("gen_mode", "conditional"), r.get("batch", 1), r["depth"], r["frames"],
            r["unit"])


def write(out, results, commands, show=False):
    """Writes the JSON record (latest result per configuration) and prints the tables."""
    log = print if show else (lambda *a, **k: None)
    latest = {}
    for r in results:
        latest[(*_key(r), r["recompute"])] = r

    def mb(r, key):
        return f"{r[key]:.0f}" if r.get(key) is not None else "-"

    summary = {}
    log("\n| model | batch | depth | plain peak RSS MB | recompute peak RSS MB | ratio | "
        "plain TF step MB | recompute TF step MB | ratio | plain s/step | "
        "recompute s/step | time overhead |")
    log("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (gen_mode, batch, depth, frames, unit, recompute), rec in sorted(latest.items()):
        plain = latest.get((gen_mode, batch, depth, frames, "level", False))
        if not recompute or unit != "level" or frames != 4 or plain is None:
            continue
        row = dict(
            peak_ratio=rec["steady_peak_mb"] / plain["steady_peak_mb"],
            time_overhead=rec["median_step_s"] / plain["median_step_s"] - 1.0)
        if rec.get("tf_step_mb") is not None and plain.get("tf_step_mb") is not None:
            row["tf_step_ratio"] = rec["tf_step_mb"] / plain["tf_step_mb"]
        summary[f"{gen_mode}/batch{batch}/depth{depth}"] = row
        tf_ratio = f"{row['tf_step_ratio']:.2f}" if "tf_step_ratio" in row else "-"
        log(f"| {gen_mode} | {batch} | {depth} | {plain['steady_peak_mb']:.0f} | "
            f"{rec['steady_peak_mb']:.0f} | {row['peak_ratio']:.2f} | "
            f"{mb(plain, 'tf_step_mb')} | {mb(rec, 'tf_step_mb')} | {tf_ratio} | "
            f"{plain['median_step_s']:.2f} | {rec['median_step_s']:.2f} | "
            f"{100 * row['time_overhead']:+.0f}% |")
    extra = [r for k, r in sorted(latest.items())
             if r["recompute"] and (r["frames"] != 4 or r["unit"] != "level")]
    if extra:
        log("\n| model | depth | recompute unit | window frames | peak RSS MB | "
            "TF peak MB | s/step | RSS <= plain 4-frame RSS | TF peak <= plain 4-frame "
            "TF peak |")
        log("|---|---|---|---|---|---|---|---|---|")
        for r in extra:
            plain = latest.get((r.get("gen_mode", "conditional"), r.get("batch", 1),
                                r["depth"], 4, "level", False))
            fits = "-" if plain is None else str(
                r["steady_peak_mb"] <= plain["steady_peak_mb"])
            fits_tf = "-" if plain is None or None in (
                plain.get("tf_peak_mb"), r.get("tf_peak_mb")) else str(
                r["tf_peak_mb"] <= plain["tf_peak_mb"])
            log(f"| {r.get('gen_mode', 'conditional')} | {r['depth']} | {r['unit']} | "
                f"{r['frames']} | {r['steady_peak_mb']:.0f} | {mb(r, 'tf_peak_mb')} | "
                f"{r['median_step_s']:.2f} | {fits} | {fits_tf} |")
    record = dict(
        commands=commands,
        machine=f"{platform.machine()}, {os.cpu_count()} cpus",
        measured=(
            "One fresh process per config. baseline_mb: RSS after build + DDI + "
            "optimizer.build + malloc_trim. steady_peak_mb: VmHWM (= ru_maxrss) over "
            "`repeats` compiled training steps (loss + gradients + Adam) after the first "
            "step (counter reset after step 1), i.e. the process's peak RSS in steady "
            "training. step_mb = steady_peak - baseline. tf_peak_mb / tf_step_mb: TF's "
            "CPU allocator peak bytes in use during the steady steps (all tensors: "
            "weights, Adam slots, activations, gradients) and that minus the bytes in "
            "use at baseline. Times: median over repeats; load average recorded."),
        model=("videoflow_bpp (64x64, 3 levels, affine 512, gatu; conv3d prior 5 x 256), "
               "batch `batch` (1 unless stated), 3 context frames (conditional) + window `frames`; "
               "'unconditional' = the same flow with marginal priors only"),
        results=[latest[k] for k in sorted(latest)],
        summary=summary)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(record, f, indent=1)
    log(f"\nwrote {out}")


if __name__ == "__main__":
    main()

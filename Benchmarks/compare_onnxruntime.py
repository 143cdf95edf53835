#!/usr/bin/env python3
"""LiteCNN's runtime against ONNX Runtime on the same ONNX files, same machine, same threads.

For every model x threads x batch: ONNX Runtime (CPU provider, intra_op_num_threads = threads, inter_op 1,
sequential execution) and `litecnn bench FILE --json` run the same file with the same warm-up and number of timed
runs; both report the median latency of one batch. Each runtime runs in its own subprocess so that its peak
resident memory (VmHWM) is its own.

usage:
  python Benchmarks/compare_onnxruntime.py [--models m1 m2 ...] [--threads 1 2] [--batch 1 8]
         [--runs 30] [--warmup 5] [--onnx-dir DIR | --from-litecnn] [--litecnn PATH] [--json out.json]

ONNX files come from $BENCH_CACHE/onnx (default ~/.cache/litecnn-bench/onnx: the zoo exported by PyTorch), or,
with --from-litecnn, are created by `litecnn export` into a temporary folder (no torch needed).
Missing models, a missing onnxruntime or a failing runtime are reported in the table instead of stopping the run.
"""
import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile

from bench_common import cpu_model, find_litecnn

DEFAULT_MODELS = ["squeezenet1_1", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
                  "shufflenet_v2_x1_0", "efficientnet_b0", "resnet18"]

# The ONNX Runtime measurement, run in a child process so its VmHWM is ONNX Runtime's alone.
ORT_CHILD = r"""
import json, statistics, sys, time
import numpy as np
import onnxruntime as rt
path, threads, batch, warmup, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t0 = time.perf_counter()
o = rt.SessionOptions()
o.intra_op_num_threads = threads
o.inter_op_num_threads = 1
o.execution_mode = rt.ExecutionMode.ORT_SEQUENTIAL
s = rt.InferenceSession(path, o, providers=["CPUExecutionProvider"])
inp = s.get_inputs()[0]
shape = [batch if not isinstance(d, int) else d for d in inp.shape]
shape = [d if isinstance(d, int) else 224 for d in shape]
x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
s.run(None, {inp.name: x})
first = (time.perf_counter() - t0) * 1e3
for _ in range(warmup):
    s.run(None, {inp.name: x})
ts = []
for _ in range(runs):
    t = time.perf_counter(); s.run(None, {inp.name: x}); ts.append((time.perf_counter() - t) * 1e3)
rss = None
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) * 1024
except OSError:
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
print(json.dumps({"median_ms": statistics.median(ts), "first_inference_ms": first, "peak_rss_bytes": rss,
                  "version": rt.__version__}))
"""


def run_json(cmd, timeout):
    """Runs cmd, returns (parsed JSON of stdout, None) or (None, short error)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        return None, f"not found: {e.filename}"
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["exit code %d" % p.returncode])[-1]
        return None, last[:160]
    try:
        return json.loads(p.stdout), None
    except json.JSONDecodeError:
        return None, "unparsable output: " + " ".join(p.stdout.split())[:120]


def mb(b):
    return "—" if b is None else f"{b / 1048576:.0f}"


def ms(v):
    return "—" if v is None else f"{v:.2f}"


def median_run(runs):
    """The run whose median latency is the median of the rounds' (the lower middle one for an even count)."""
    if not runs:
        return None
    return sorted(runs, key=lambda r: r["median_ms"])[(len(runs) - 1) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    cache = os.environ.get("BENCH_CACHE", os.path.expanduser("~/.cache/litecnn-bench"))
    ap.add_argument("--onnx-dir", default=os.path.join(cache, "onnx"))
    ap.add_argument("--from-litecnn", action="store_true", help="create the ONNX files with `litecnn export`")
    ap.add_argument("--litecnn", help="path of the litecnn executable (default: .build/release/litecnn)")
    ap.add_argument("--json", default="benchmark-results.json", help="where to write the results as JSON")
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed for one measurement")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each case this many times, alternating ORT and LiteCNN, and report the median of "
                         "each side's medians (a shared or noisy machine drifts between the two processes)")
    args = ap.parse_args()

    litecnn = find_litecnn(args.litecnn)
    notes = []
    try:
        import onnxruntime  # noqa: F401  (only to report its absence early; measurements run in children)
        have_ort = True
    except ImportError:
        have_ort = False
        notes.append("onnxruntime is not installed (pip install -r Benchmarks/requirements.txt): ORT columns are empty")

    onnx_dir = args.onnx_dir
    if args.from_litecnn:
        onnx_dir = tempfile.mkdtemp(prefix="litecnn-onnx-")
        for m in args.models:
            p = subprocess.run([litecnn, "export", m, "--onnx", os.path.join(onnx_dir, m + ".onnx")],
                               capture_output=True, text=True)
            if p.returncode != 0:
                notes.append(f"{m}: litecnn export failed: {(p.stderr.strip().splitlines() or ['?'])[-1][:160]}")

    print(f"# LiteCNN vs ONNX Runtime — {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, {cpu_model()}, "
          f"{os.cpu_count()} logical CPUs")
    print(f"# command: {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"# ONNX files: {onnx_dir}; warm-up {args.warmup}, {args.runs} timed runs, median latency of one batch"
          + (f"; median of {args.rounds} alternating rounds" if args.rounds > 1 else ""))
    print()
    print("| model | threads | batch | ORT ms | LiteCNN ms | ORT/LiteCNN | ORT peak RSS MB | LiteCNN peak RSS MB "
          "| LiteCNN first inference ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for m in args.models:
        path = os.path.join(onnx_dir, m + ".onnx")
        if not os.path.exists(path):
            notes.append(f"{m}: {path} is missing (run /work/shared/bench/setup.sh, or use --from-litecnn)")
            continue
        for t in args.threads:
            for b in args.batch:
                ort_runs, lite_runs, ort_err, lite_err = [], [], "onnxruntime missing", None
                for _ in range(max(1, args.rounds)):
                    if have_ort:
                        ort, ort_err = run_json([sys.executable, "-c", ORT_CHILD, path, str(t), str(b),
                                                 str(args.warmup), str(args.runs)], args.timeout)
                        if ort:
                            ort_runs.append(ort)
                    lite, lite_err = run_json([litecnn, "bench", path, "--threads", str(t), "--batch", str(b),
                                               "--runs", str(args.runs), "--warmup", str(args.warmup), "--json"],
                                              args.timeout)
                    if lite:
                        lite_runs.append(lite)
                ort, lite = median_run(ort_runs), median_run(lite_runs)
                for who, err in (("ORT", ort_err if not ort else None), ("LiteCNN", lite_err if not lite else None)):
                    if err and not (who == "ORT" and not have_ort):
                        notes.append(f"{m} threads {t} batch {b}: {who}: {err}")
                ratio = ort["median_ms"] / lite["median_ms"] if ort and lite else None
                row = {"model": m, "threads": t, "batch": b,
                       "ort_ms": ort and ort["median_ms"], "litecnn_ms": lite and lite["median_ms"],
                       "ratio_ort_over_litecnn": ratio,
                       "ort_peak_rss_bytes": ort and ort["peak_rss_bytes"],
                       "litecnn_peak_rss_bytes": lite and lite.get("peak_rss_bytes"),
                       "litecnn_first_inference_ms": lite and lite["first_inference_ms"],
                       "ort_first_inference_ms": ort and ort["first_inference_ms"],
                       "litecnn_p90_ms": lite and lite["p90_ms"],
                       "litecnn_peak_activation_bytes": lite and lite["peak_activation_bytes"],
                       "litecnn_batch_splitting": lite and lite.get("batch_splitting"),
                       "ort_round_medians_ms": [r["median_ms"] for r in ort_runs],
                       "litecnn_round_medians_ms": [r["median_ms"] for r in lite_runs]}
                results.append(row)
                print(f"| {m} | {t} | {b} | {ms(row['ort_ms'])} | {ms(row['litecnn_ms'])} | "
                      f"{'—' if ratio is None else f'{ratio:.2f}'} | {mb(row['ort_peak_rss_bytes'])} | "
                      f"{mb(row['litecnn_peak_rss_bytes'])} | {ms(row['litecnn_first_inference_ms'])} |", flush=True)
    if notes:
        print()
        for n in notes:
            print(f"- note: {n}")
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu_model(),
            "command": sys.argv, "onnx_dir": onnx_dir, "runs": args.runs, "warmup": args.warmup, "rounds": args.rounds,
            "litecnn": litecnn, "notes": notes}
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2)
    os.replace(tmp, args.json)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

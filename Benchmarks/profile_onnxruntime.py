#!/usr/bin/env python3
"""Where LiteCNN's time goes against ONNX Runtime's, layer group by layer group, on one ONNX file.

Runs ONNX Runtime with its profiler (`enable_profiling`; CPU provider, same threads and batch) and
`litecnn bench FILE --profile --json` on the same file, takes each side's median time per node over the timed runs,
and sums both by node-name group: PyTorch's scoped names without their last STRIP components (the operator and
the leaf module: `/features/features.2/block/block.1/block.1.0/Conv` and ONNX Runtime's fused
`/features/features.2/block/block.1/block.1.2/Relu_output_0_nchwc` are both `/features/features.2/block/block.1`).
Groups are needed because the two runtimes fuse differently and name fused nodes differently (ONNX Runtime names a
fused Conv after its output; LiteCNN keeps the Conv's name). Prints a Markdown table sorted by how much
longer LiteCNN takes, and the totals per operator on each side.

usage:
  python Benchmarks/profile_onnxruntime.py MODEL [--threads 1] [--batch 1] [--runs 50] [--strip 2] [--top 25]
         [--onnx-dir DIR] [--litecnn PATH] [--json out.json]

MODEL is an .onnx path or a name in --onnx-dir ($BENCH_CACHE/onnx, default ~/.cache/litecnn-bench/onnx).
The profiles are medians of per-node times, so their sums are a little below each runtime's end-to-end median:
graph input and output conversion, and (for ONNX Runtime) the session's own overhead, are outside every node.
"""
import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile

from bench_common import find_litecnn

# ONNX Runtime with profiling, in a child process (its profiler writes a trace file; we return medians per node).
ORT_CHILD = r"""
import json, statistics, sys, collections
import numpy as np
import onnxruntime as rt
path, threads, batch, warmup, runs, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
o = rt.SessionOptions()
o.intra_op_num_threads = threads
o.inter_op_num_threads = 1
o.execution_mode = rt.ExecutionMode.ORT_SEQUENTIAL
o.enable_profiling = True
o.profile_file_prefix = prefix
s = rt.InferenceSession(path, o, providers=["CPUExecutionProvider"])
inp = s.get_inputs()[0]
shape = [batch if not isinstance(d, int) else d for d in inp.shape]
x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
for _ in range(warmup + runs):
    s.run(None, {inp.name: x})
trace = json.load(open(s.end_profiling()))
per = collections.defaultdict(list)
for e in trace:
    if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
        per[(e["name"][: -len("_kernel_time")], e.get("args", {}).get("op_name", "?"))].append(e["dur"] / 1000.0)
out = [{"node": n, "op": op, "milliseconds": statistics.median(v[-runs:])} for (n, op), v in per.items()]
print(json.dumps(out))
"""


def group(name, strip):
    parts = name.split("/")
    return "/".join(parts[:-strip]) if name.startswith("/") and len(parts) > strip + 1 else name


def main():
    cache = os.environ.get("BENCH_CACHE", os.path.expanduser("~/.cache/litecnn-bench"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--strip", type=int, default=2,
                    help="trailing name components dropped to form a group (default 2: operator and leaf module)")
    ap.add_argument("--top", type=int, default=25, help="groups to print (default 25)")
    ap.add_argument("--onnx-dir", default=os.path.join(cache, "onnx"))
    ap.add_argument("--litecnn", help="path of the litecnn executable (default: the newest .build*/release/litecnn)")
    ap.add_argument("--json", help="also write the joined table as JSON")
    args = ap.parse_args()

    path = args.model if args.model.endswith(".onnx") else os.path.join(args.onnx_dir, args.model + ".onnx")
    if not os.path.exists(path):
        sys.exit(f"error: {path}: no such ONNX file")
    litecnn = args.litecnn or find_litecnn()
    if not litecnn:
        sys.exit("error: no litecnn executable found; build with `swift build -c release` or pass --litecnn")

    with tempfile.TemporaryDirectory() as tmp:
        ort = subprocess.run([sys.executable, "-c", ORT_CHILD, path, str(args.threads), str(args.batch),
                              str(args.warmup), str(args.runs), os.path.join(tmp, "ort")],
                             capture_output=True, text=True)
    if ort.returncode != 0:
        sys.exit(f"error: ONNX Runtime failed on {path}:\n{ort.stderr.strip()[-2000:]}")
    ort_nodes = json.loads(ort.stdout)
    lc = subprocess.run([litecnn, "bench", path, "--threads", str(args.threads), "--batch", str(args.batch),
                         "--runs", str(args.runs), "--warmup", str(args.warmup), "--profile", "--json"],
                        capture_output=True, text=True)
    if lc.returncode != 0:
        sys.exit(f"error: litecnn bench failed on {path}:\n{lc.stderr.strip()[-2000:]}")
    report = json.loads(lc.stdout)
    lc_nodes = report["profile"]

    lc_ms, ort_ms = collections.defaultdict(float), collections.defaultdict(float)
    lc_ops = collections.defaultdict(set)
    for step in lc_nodes:
        key = group(step["node"], args.strip)
        lc_ms[key] += step["milliseconds"]
        lc_ops[key].add(step["op"])
    for node in ort_nodes:
        ort_ms[group(node["node"], args.strip)] += node["milliseconds"]
    keys = sorted(set(lc_ms) | set(ort_ms), key=lambda k: -(lc_ms[k] - ort_ms[k]))
    rows = [{"group": k, "litecnn_ms": lc_ms[k], "ort_ms": ort_ms[k], "difference_ms": lc_ms[k] - ort_ms[k],
             "litecnn_ops": sorted(lc_ops[k])} for k in keys]

    print(f"# {os.path.basename(path)}: LiteCNN vs ONNX Runtime per node group (names without their last {args.strip} components), "
          f"{args.threads} thread(s), batch {args.batch}, median of {args.runs} runs per node")
    print(f"# end-to-end median: LiteCNN {report['median_ms']:.3f} ms; sum of profiled steps: "
          f"LiteCNN {sum(lc_ms.values()):.3f} ms, ONNX Runtime {sum(ort_ms.values()):.3f} ms\n")
    print("| group | LiteCNN ms | ORT ms | LiteCNN − ORT | LiteCNN steps |")
    print("|---|---:|---:|---:|---|")
    for r in rows[: args.top]:
        print(f"| `{r['group']}` | {r['litecnn_ms']:.3f} | {r['ort_ms']:.3f} | {r['difference_ms']:+.3f} | "
              f"{', '.join(r['litecnn_ops'])} |")
    if len(rows) > args.top:
        print(f"\n({len(rows) - args.top} more groups; --top {len(rows)} prints all)")

    by_op_lc, by_op_ort = collections.defaultdict(float), collections.defaultdict(float)
    for step in lc_nodes:
        by_op_lc[step["op"]] += step["milliseconds"]
    for node in ort_nodes:
        by_op_ort[node["op"]] += node["milliseconds"]
    print("\n| LiteCNN step kind | ms |   | ONNX Runtime operator | ms |")
    print("|---|---:|---|---|---:|")
    left = sorted(by_op_lc.items(), key=lambda kv: -kv[1])
    right = sorted(by_op_ort.items(), key=lambda kv: -kv[1])
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ("", None)
        b = right[i] if i < len(right) else ("", None)
        fa = f"{a[1]:.3f}" if a[1] is not None else ""
        fb = f"{b[1]:.3f}" if b[1] is not None else ""
        print(f"| {a[0]} | {fa} |   | {b[0]} | {fb} |")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": os.path.basename(path), "threads": args.threads, "batch": args.batch,
                       "runs": args.runs, "strip": args.strip, "litecnn_median_ms": report["median_ms"],
                       "groups": rows, "litecnn_by_step_kind": by_op_lc, "ort_by_operator": by_op_ort}, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""LiteCNN's training against PyTorch 2.x eager on the CPU: the same architecture, batch, resolution and threads.

Throughput (default): for every case (model, resolution, batch) both frameworks train with SGD (momentum 0.9,
weight decay 1e-4, cross-entropy on the 10 classes of the built-in shapes set) and report images per second of
forward + backward + optimizer step after a warm-up:
  - PyTorch: a child process builds the torchvision model (random init), sets torch.set_num_threads(threads), runs
    --warmup steps, then times --steps steps on a fixed random batch (no data loading in the timed loop).
  - LiteCNN: `litecnn train --json` counts only the time spent in training steps (not data loading or evaluation),
    but from the first step on. To leave out the warm-up the same command runs twice, with --warmup and with
    --warmup + --steps steps (one epoch each: --samples = batch x steps), and the difference of the two step
    times gives the steady-state rate.
Each side runs in its own process; its peak resident set size is read with os.wait4 (ru_maxrss of that child).

Parity (--parity): `litecnn data shapes` writes the shapes set as .npy files; PyTorch trains the torchvision model
on those files and `litecnn train --data DIR --format npy` trains LiteCNN's, with the same recipe (SGD momentum 0.9,
constant learning rate, same epochs/batch/resolution, inputs normalized by LiteCNN's defaults (x - 0.5) / 0.25, last
incomplete batch dropped), and both test-set top-1 accuracies are printed. Initial weights and shuffling differ
between the frameworks, so expect agreement within a few points, not equality.

usage:
  python Benchmarks/compare_pytorch_training.py [--cases squeezenet1_1:64:32 ...] [--threads 2] [--warmup 3]
         [--steps 10] [--litecnn PATH] [--json out.json] [--torch-only]
  python Benchmarks/compare_pytorch_training.py --parity [--models mobilenet_v2] [--samples 2000] [--epochs 5]
         [--batch 32] [--resolution 32] [--lr 0.05]
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
import threading

DEFAULT_CASES = ["squeezenet1_1:64:32", "mobilenet_v2:64:32", "shufflenet_v2_x1_0:64:32", "mobilenet_v2:224:16"]
CLASSES = 10          # the shapes set's classes
WEIGHT_DECAY = 1e-4
MOMENTUM = 0.9

# PyTorch's training throughput, in a child process so that its peak RSS is its own.
TORCH_THROUGHPUT_CHILD = r"""
import json, sys, time
import torch, torchvision
name, resolution, batch, threads, warmup, steps, lr, momentum, decay, classes = sys.argv[1:11]
resolution, batch, threads, warmup, steps, classes = map(int, (resolution, batch, threads, warmup, steps, classes))
torch.set_num_threads(threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass
torch.manual_seed(0)
model = torchvision.models.get_model(name, weights=None, num_classes=classes)
model.train()
opt = torch.optim.SGD(model.parameters(), lr=float(lr), momentum=float(momentum), weight_decay=float(decay))
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.rand(batch, 3, resolution, resolution)
y = torch.randint(0, classes, (batch,))
def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()
for _ in range(warmup):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    last = step()
elapsed = time.perf_counter() - t0
print(json.dumps({"images_per_s": steps * batch / elapsed, "seconds": elapsed, "loss": last,
                  "torch": torch.__version__, "threads": torch.get_num_threads()}))
"""

# PyTorch training on LiteCNN's exported shapes set (npy, NHWC float in [0, 1], int64 labels), then test top-1.
TORCH_PARITY_CHILD = r"""
import json, sys, time
import numpy as np
import torch, torchvision
data, name, resolution, batch, epochs, lr, momentum, decay, threads, seed = sys.argv[1:11]
resolution, batch, epochs, threads, seed = map(int, (resolution, batch, epochs, threads, seed))
torch.set_num_threads(threads)
torch.manual_seed(seed)
def load(split):
    x = np.load(f"{data}/{split}_images.npy").astype(np.float32)
    y = np.load(f"{data}/{split}_labels.npy").astype(np.int64)
    x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()          # NHWC -> NCHW
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1).contiguous()
    if x.shape[2] != resolution or x.shape[3] != resolution:
        x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return (x - 0.5) / 0.25, torch.from_numpy(y)                       # LiteCNN's default normalization
xtr, ytr = load("train")
xte, yte = load("test")
classes = int(max(ytr.max(), yte.max())) + 1
model = torchvision.models.get_model(name, weights=None, num_classes=classes)
opt = torch.optim.SGD(model.parameters(), lr=float(lr), momentum=float(momentum), weight_decay=float(decay))
loss_fn = torch.nn.CrossEntropyLoss()
history = []
t0 = time.perf_counter()
for epoch in range(epochs):
    model.train()
    order = torch.randperm(len(xtr))
    total, correct, seen = 0.0, 0, 0
    for start in range(0, len(order) - batch + 1, batch):   # drop the last incomplete batch, as LiteCNN does
        idx = order[start:start + batch]
        opt.zero_grad(set_to_none=True)
        out = model(xtr[idx])
        loss = loss_fn(out, ytr[idx])
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
        correct += int((out.argmax(1) == ytr[idx]).sum())
        seen += len(idx)
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(xte[i:i + 256]).argmax(1) == yte[i:i + 256]).sum()) for i in range(0, len(xte), 256))
    history.append({"epoch": epoch + 1, "loss": total / max(seen, 1), "top1": 100 * correct / max(seen, 1),
                    "test_top1": 100 * hits / len(xte)})
print(json.dumps({"history": history, "seconds": time.perf_counter() - t0, "torch": torch.__version__}))
"""


class ChildResult:
    def __init__(self, returncode, stdout, stderr, peak_rss_bytes, timed_out):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.peak_rss_bytes, self.timed_out = peak_rss_bytes, timed_out

    @property
    def ok(self):
        return self.returncode == 0 and not self.timed_out

    def failure(self, what):
        lines = (self.stderr or self.stdout or "").strip().splitlines()
        if len(lines) > 16:  # the message is usually first (CLI errors) or last (Python tracebacks): keep both ends
            lines = lines[:6] + [f"... ({len(lines) - 14} lines left out)"] + lines[-8:]
        reason = "timed out" if self.timed_out else f"exit status {self.returncode}"
        return f"{what} failed ({reason}):\n    " + "\n    ".join(lines or ["(no output)"])


def run_child(cmd, timeout, env=None):
    """Runs `cmd`, returning its output and its own peak RSS (ru_maxrss from os.wait4, in bytes)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        except OSError as e:
            return ChildResult(127, "", f"cannot start {cmd[0]}: {e}", None, False)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            proc.kill()
        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        scale = 1 if sys.platform == "darwin" else 1024
        return ChildResult(proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                           usage.ru_maxrss * scale, timed_out.is_set())


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def torch_throughput(args, name, resolution, batch):
    cmd = [args.python, "-c", TORCH_THROUGHPUT_CHILD, name, str(resolution), str(batch), str(args.threads),
           str(args.warmup), str(args.steps), str(args.lr), str(MOMENTUM), str(WEIGHT_DECAY), str(CLASSES)]
    result = run_child(cmd, args.timeout)
    if not result.ok:
        return None, result.failure(f"PyTorch {name}")
    report = last_json_line(result.stdout)
    if report is None:
        return None, f"PyTorch {name}: no JSON in its output:\n    {result.stdout.strip()[-500:]}"
    report["peak_rss_bytes"] = result.peak_rss_bytes
    return report, None


def litecnn_train_command(args, name, resolution, batch, steps, out_dir):
    return [args.litecnn, "train", "--model", name, "--data", "shapes", "--samples", str(batch * steps),
            "--test-samples", str(batch), "--epochs", "1", "--batch", str(batch), "--lr", str(args.lr),
            "--resolution", str(resolution), "--optimizer", "sgd", "--schedule", "constant",
            "--momentum", str(MOMENTUM), "--weight-decay", str(WEIGHT_DECAY), "--seed", "0",
            "--threads", str(args.threads), "--out", out_dir, "--json"]


def litecnn_throughput(args, name, resolution, batch):
    """Two runs (warm-up only, warm-up + timed steps); the difference of their step times is the steady state."""
    runs = {}
    with tempfile.TemporaryDirectory(prefix="litecnn-train-bench-") as tmp:
        for label, steps in (("warmup", args.warmup), ("full", args.warmup + args.steps)):
            cmd = litecnn_train_command(args, name, resolution, batch, steps, os.path.join(tmp, label))
            result = run_child(cmd, args.timeout)
            if not result.ok:
                return None, result.failure(f"LiteCNN {name} ({shlex.join(cmd)})")
            report = last_json_line(result.stdout)
            if report is None or not report.get("images_per_s"):
                return None, (f"LiteCNN {name}: no epoch JSON with images_per_s in its output "
                              f"({shlex.join(cmd)}):\n    {(result.stdout + result.stderr).strip()[-800:]}")
            report["step_seconds"] = steps * batch / report["images_per_s"]
            report["peak_rss_bytes"] = result.peak_rss_bytes
            runs[label] = report
    timed = runs["full"]["step_seconds"] - runs["warmup"]["step_seconds"]
    note = None
    if timed <= 0:
        # Noise larger than the measurement: fall back to the full run's mean rate (warm-up included).
        rate = runs["full"]["images_per_s"]
        note = f"LiteCNN {name}: warm-up subtraction failed (noisy machine); rate includes warm-up"
    else:
        rate = args.steps * batch / timed
    return {"images_per_s": rate, "images_per_s_with_warmup": runs["full"]["images_per_s"],
            "peak_rss_bytes": runs["full"]["peak_rss_bytes"], "loss": runs["full"].get("loss")}, note


def mb(value):
    return "—" if value is None else f"{value / 2**20:.0f} MB"


def rate(value):
    return "—" if value is None else f"{value:.1f}"


def throughput(args):
    rows, notes = [], []
    for case in args.cases:
        try:
            name, resolution, batch = case.split(":")
            resolution, batch = int(resolution), int(batch)
        except ValueError:
            sys.exit(f"--cases: '{case}' is not MODEL:RESOLUTION:BATCH")
        print(f"# {name} {resolution}x{resolution} batch {batch} ...", file=sys.stderr, flush=True)
        torch_report, note = torch_throughput(args, name, resolution, batch)
        if note:
            notes.append(note)
        lite_report = None
        if not args.torch_only:
            lite_report, note = litecnn_throughput(args, name, resolution, batch)
            if note:
                notes.append(note)
        t = torch_report["images_per_s"] if torch_report else None
        l = lite_report["images_per_s"] if lite_report else None
        rows.append({"model": name, "resolution": resolution, "batch": batch, "threads": args.threads,
                     "torch_images_per_s": t, "litecnn_images_per_s": l,
                     "ratio": (l / t) if t and l else None,
                     "torch_peak_rss_bytes": torch_report and torch_report["peak_rss_bytes"],
                     "litecnn_peak_rss_bytes": lite_report and lite_report["peak_rss_bytes"],
                     "torch": torch_report, "litecnn": lite_report})
    print(f"Training throughput, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_model()}, "
          f"{args.threads} threads, SGD momentum {MOMENTUM}, warm-up {args.warmup} + {args.steps} timed steps")
    print(f"Command: {shlex.join([os.path.basename(sys.argv[0])] + sys.argv[1:])}\n")
    print("| model | res | batch | torch img/s | litecnn img/s | litecnn/torch | torch RSS | litecnn RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"| {r['model']} | {r['resolution']} | {r['batch']} | {rate(r['torch_images_per_s'])} | "
              f"{rate(r['litecnn_images_per_s'])} | {ratio} | {mb(r['torch_peak_rss_bytes'])} | "
              f"{mb(r['litecnn_peak_rss_bytes'])} |")
    for note in notes:
        print(f"\n- {note}")
    return {"mode": "throughput", "rows": rows, "notes": notes}


def parity(args):
    results, notes = [], []
    with tempfile.TemporaryDirectory(prefix="litecnn-parity-") as tmp:
        data_dir = os.path.join(tmp, "shapes")
        cmd = [args.litecnn, "data", "shapes", "--samples", str(args.samples), "--resolution", str(args.resolution),
               "--seed", str(args.seed), "--out", data_dir]
        result = run_child(cmd, args.timeout)
        if not result.ok:
            sys.exit(result.failure(f"LiteCNN data export ({shlex.join(cmd)})"))
        for name in args.models:
            print(f"# parity {name} ...", file=sys.stderr, flush=True)
            torch_cmd = [args.python, "-c", TORCH_PARITY_CHILD, data_dir, name, str(args.resolution), str(args.batch),
                         str(args.epochs), str(args.lr), str(MOMENTUM), str(WEIGHT_DECAY), str(args.threads),
                         str(args.seed)]
            torch_result = run_child(torch_cmd, args.timeout)
            torch_report = last_json_line(torch_result.stdout) if torch_result.ok else None
            if torch_report is None:
                notes.append(torch_result.failure(f"PyTorch {name}"))
            lite_cmd = [args.litecnn, "train", "--model", name, "--data", data_dir, "--format", "npy",
                        "--epochs", str(args.epochs), "--batch", str(args.batch), "--lr", str(args.lr),
                        "--resolution", str(args.resolution), "--optimizer", "sgd", "--schedule", "constant",
                        "--momentum", str(MOMENTUM), "--weight-decay", str(WEIGHT_DECAY), "--seed", str(args.seed),
                        "--threads", str(args.threads), "--out", os.path.join(tmp, f"run-{name}"), "--json"]
            lite_result = run_child(lite_cmd, args.timeout)
            lite_report = last_json_line(lite_result.stdout) if lite_result.ok else None
            if lite_report is None:
                notes.append(lite_result.failure(f"LiteCNN {name} ({shlex.join(lite_cmd)})"))
            results.append({
                "model": name,
                "torch_test_top1": torch_report["history"][-1]["test_top1"] if torch_report else None,
                "litecnn_test_top1": lite_report.get("test_top1") if lite_report else None,
                "torch_seconds": torch_report and torch_report["seconds"],
                "torch_peak_rss_bytes": torch_result.peak_rss_bytes, "litecnn_peak_rss_bytes": lite_result.peak_rss_bytes,
                "torch_history": torch_report and torch_report["history"],
                "litecnn_last_epoch": lite_report})
    print(f"Accuracy parity on the shapes set ({args.samples} training images, {args.resolution}x{args.resolution}), "
          f"{args.epochs} epochs, batch {args.batch}, SGD lr {args.lr} momentum {MOMENTUM} weight decay {WEIGHT_DECAY}, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_model()}\n")
    print("| model | torch test top-1 | litecnn test top-1 | torch RSS | litecnn RSS |")
    print("|---|---|---|---|---|")
    for r in results:
        def pct(v):
            return "—" if v is None else f"{v:.1f}%"
        print(f"| {r['model']} | {pct(r['torch_test_top1'])} | {pct(r['litecnn_test_top1'])} | "
              f"{mb(r['torch_peak_rss_bytes'])} | {mb(r['litecnn_peak_rss_bytes'])} |")
    for note in notes:
        print(f"\n- {note}")
    return {"mode": "parity", "rows": results, "notes": notes}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--cases", nargs="+", default=DEFAULT_CASES, metavar="MODEL:RES:BATCH",
                   help="throughput cases (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01; parity 0.05)")
    p.add_argument("--litecnn", help="the litecnn executable (default: the newest .build*/release/litecnn)")
    p.add_argument("--python", default=sys.executable, help="Python with torch and torchvision for the PyTorch side")
    p.add_argument("--torch-only", action="store_true", help="measure the PyTorch side only")
    p.add_argument("--parity", action="store_true", help="train both to convergence on the shapes set, compare top-1")
    p.add_argument("--models", nargs="+", default=["mobilenet_v2"], help="parity: models (default mobilenet_v2)")
    p.add_argument("--samples", type=int, default=2000, help="parity: training images (default 2000)")
    p.add_argument("--epochs", type=int, default=5, help="parity: epochs (default 5)")
    p.add_argument("--batch", type=int, default=32, help="parity: batch size (default 32)")
    p.add_argument("--resolution", type=int, default=32, help="parity: resolution (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600, help="seconds per child process (default 3600)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = p.parse_args()
    if args.threads < 1 or args.warmup < 1 or args.steps < 1:
        p.error("--threads, --warmup and --steps must be at least 1")
    args.lr = args.lr if args.lr is not None else (0.05 if args.parity else 0.01)
    args.litecnn = find_litecnn(args.litecnn)
    report = parity(args) if args.parity else throughput(args)
    report.update({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "cpu": cpu_model(),
                   "litecnn": args.litecnn, "command": sys.argv})
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.json)
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()

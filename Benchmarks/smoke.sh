#!/usr/bin/env bash
# By-hand smoke test of the runtime commands: export → run → bench on a small zoo model, checking each output.
# usage: Benchmarks/smoke.sh [path/to/litecnn]   (default: builds with `swift build -c release` and uses .build)
# Needs python3 with numpy for the input/output checks (skipped with a note without numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
LITECNN=${1:-}
if [[ -z "$LITECNN" ]]; then
  swift build -c release --product litecnn >/dev/null
  LITECNN=.build/release/litecnn
fi
MODEL=${MODEL:-mobilenet_v3_small}
RES=${RES:-96}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== export $MODEL at ${RES}×${RES}, 10 classes"
"$LITECNN" export "$MODEL" --classes 10 --resolution "$RES" --seed 3 --onnx "$WORK/m.onnx"
[[ -s "$WORK/m.onnx" ]] || fail "export wrote no file"

echo "== weights file → export"
"$LITECNN" weights "$MODEL" --classes 10 --seed 3 --out "$WORK/m.safetensors" >/dev/null
"$LITECNN" export "$WORK/m.safetensors" --resolution "$RES" --onnx "$WORK/w.onnx"
cmp -s "$WORK/m.onnx" "$WORK/w.onnx" && echo "   (same bytes as the zoo export: same seed, same weights)"

if python3 -c "import numpy" 2>/dev/null; then
  python3 - "$WORK" "$RES" <<'PY'
import sys, numpy as np
np.save(f"{sys.argv[1]}/x.npy", np.random.default_rng(0).standard_normal((2, 3, int(sys.argv[2]), int(sys.argv[2])), dtype=np.float32))
PY
  echo "== run (ONNX file, zoo name and weights file must agree)"
  "$LITECNN" run "$WORK/m.onnx" --input "$WORK/x.npy" --output "$WORK/y_onnx.npy" --threads 2
  "$LITECNN" run "$MODEL" --classes 10 --seed 3 --input "$WORK/x.npy" --output "$WORK/y_zoo.npy"
  "$LITECNN" run "$WORK/m.safetensors" --input "$WORK/x.npy" --output "$WORK/y_w.npy" --threads 1
  python3 - "$WORK" <<'PY' || fail "outputs disagree"
import sys, numpy as np
d = sys.argv[1]
a, b, c = (np.load(f"{d}/{n}.npy") for n in ("y_onnx", "y_zoo", "y_w"))
assert a.shape == (2, 10), a.shape
assert np.isfinite(a).all()
for other in (b, c):
    err = np.abs(a - other).max()
    assert err <= 1e-4 * max(1.0, np.abs(a).max()), err
print("   outputs agree:", a.shape)
PY
  echo "== run with a wrong shape must fail with a message"
  python3 -c "import numpy as np; np.save('$WORK/bad.npy', np.zeros((1, 4, 8, 8), np.float32))"
  if "$LITECNN" run "$WORK/m.onnx" --input "$WORK/bad.npy" --output "$WORK/bad_out.npy" 2>"$WORK/err.txt"; then
    fail "a [1, 4, 8, 8] input was accepted"
  fi
  grep -q "expects" "$WORK/err.txt" || fail "shape error does not say what is expected: $(cat "$WORK/err.txt")"
  [[ ! -e "$WORK/bad_out.npy" ]] || fail "a failed run left an output file"
else
  echo "note: numpy missing, run checks skipped"
fi

echo "== bench --json"
"$LITECNN" bench "$WORK/m.onnx" --threads 2 --batch 2 --runs 5 --warmup 1 --json > "$WORK/bench.json"
python3 - "$WORK/bench.json" <<'PY' || fail "bench JSON is incomplete"
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("median_ms", "p90_ms", "images_per_s", "peak_activation_bytes", "peak_rss_bytes", "first_inference_ms",
          "threads", "batch", "model"):
    assert k in r, k
assert r["batch"] == 2 and r["threads"] == 2 and r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] * 0.999
assert r["peak_activation_bytes"] > 0
print(f"   median {r['median_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms, {r['images_per_s']:.1f} images/s")
PY
echo "smoke: OK"

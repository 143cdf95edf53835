#!/usr/bin/env bash
# Reproduces the compression targets of the README (issue 5) on the built-in shapes data set:
#   1. SqueezeNet 1.0 (BatchNorm variant): Deep Compression to ≤ 0.47 MB, top-1 within 1 point;
#   2. AlexNet and VGG-16 at reduced resolution: ≥ 35× and ≥ 49× smaller, top-1 within 1 point;
#   3. MobileNet V2: 8-bit post-training quantization per channel and per tensor, with int8 activations;
#   4. MobileNet V1: structured pruning to half the multiply-adds, and the speed-up measured by `litecnn bench`.
# Each base model is trained first (skipped when its run directory already holds a model). Results go to
# $OUT/<name>.json and $OUT/<name>-report/, and a Markdown table is printed at the end.
#
# Usage: scripts/compression_targets.sh [OUT_DIR] [TARGET...]   (targets: squeezenet alexnet vgg16 mobilenet_v2 mobilenet_v1)
# Environment: LITECNN (the binary, default .build/release/litecnn, built when missing), THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-compression-results}
shift || true
TARGETS=${*:-squeezenet alexnet vgg16 mobilenet_v2 mobilenet_v1}
LITECNN=${LITECNN:-.build/release/litecnn}
[ -x "$LITECNN" ] || swift build -c release --product litecnn
THREADS_FLAG=${THREADS:+--threads $THREADS}
mkdir -p "$OUT"

train() {  # train RUN_DIR ARGS...: trains unless RUN_DIR/model.safetensors exists
    local run=$1; shift
    if [ ! -f "$run/model.safetensors" ]; then
        rm -rf "$run"
        "$LITECNN" train "$@" --data shapes $THREADS_FLAG --out "$run"
    fi
}

compress() {  # compress NAME RUN_DIR ARGS...
    local name=$1 run=$2; shift 2
    "$LITECNN" compress "$run" "$@" $THREADS_FLAG --out "$OUT/$name.lcz" --report "$OUT/$name-report" --json > "$OUT/$name.json"
}

for target in $TARGETS; do
    case $target in
    squeezenet)
        train "$OUT/runs/squeezenet1_0_bn" --model squeezenet1_0_bn --samples 4000 --resolution 64 --epochs 12 \
            --optimizer adam --lr 0.001 --schedule cosine --augment crop --batch 32
        compress squeezenet "$OUT/runs/squeezenet1_0_bn" --prune 0.67 --bits 6 --huffman --finetune-epochs 2 --finetune-lr 0.0002
        ;;
    alexnet)
        # PyTorch's default initialization leaves AlexNet's logits near zero: with crop augmentation, or Adam at 5e-4
        # for 12 epochs, it stayed at chance (ln 10) for 6 epochs; Adam at 1.5e-4 without augmentation leaves the
        # plateau in the second epoch.
        train "$OUT/runs/alexnet" --model alexnet --samples 4000 --resolution 64 --epochs 8 \
            --optimizer adam --lr 0.00015 --schedule cosine --batch 64
        # Two fine-tuning epochs at 5e-5 per stage left it 3.5 points below the base; five at 1e-4 recover it.
        compress alexnet "$OUT/runs/alexnet" --prune 0.65 --fc-prune 0.93 --bits 8 --fc-bits 5 --huffman \
            --finetune-epochs 5 --finetune-lr 0.0001
        ;;
    vgg16)
        # Plain VGG-16 stayed at chance here (Adam 1e-4 and 5e-4, 32×32), as the paper's deeper configurations did
        # without their staged initialization; the BatchNorm variant learns with SGD at 0.01 (at 0.05, and with Adam
        # at 5e-4, it died). It learns slowly: 22 % after 8 epochs, 43 % after 16.
        train "$OUT/runs/vgg16_bn" --model vgg16_bn --samples 4000 --resolution 32 --epochs 16 \
            --optimizer sgd --lr 0.01 --momentum 0.9 --weight-decay 0.0005 --schedule cosine --batch 64
        # Pruned at once to 68 % (fc 97.5 %) it fell to chance and four epochs brought it back to 18 %: prune
        # gradually instead (AGP over the first two thirds of the stage), with Deep Compression's per-layer
        # exceptions for the first convolution and the last classifier layer.
        compress vgg16 "$OUT/runs/vgg16_bn" --test-samples 4000 --prune-schedule agp:0-0.68@0-330/10 --fc-prune 0.975 \
            --layer-prune features.0=0.42 --layer-prune classifier.6=0.77 --bits 8 --fc-bits 5 --huffman \
            --finetune-epochs 8 --finetune-lr 0.004
        ;;
    mobilenet_v2)
        train "$OUT/runs/mobilenet_v2" --model mobilenet_v2 --samples 4000 --resolution 64 --epochs 10 \
            --optimizer adam --lr 0.002 --schedule cosine --augment crop --batch 64
        compress mobilenet_v2-per-channel "$OUT/runs/mobilenet_v2" --bits 8 --linear --per-channel --symmetric --calibrate minmax
        compress mobilenet_v2-per-tensor "$OUT/runs/mobilenet_v2" --bits 8 --linear --symmetric --calibrate minmax
        ;;
    mobilenet_v1)
        train "$OUT/runs/mobilenet_v1" --model mobilenet_v1 --samples 2000 --resolution 64 --epochs 2 \
            --optimizer adam --lr 0.002 --schedule cosine --batch 64
        compress mobilenet_v1-structured "$OUT/runs/mobilenet_v1" --structured 0.5 --finetune-epochs 1
        # Speed at the paper's resolution: the pruned graph's channel counts hold at any resolution, so the file is
        # re-exported at 224 by compressing a 224 export of the same weights.
        "$LITECNN" export "$OUT/runs/mobilenet_v1/model.safetensors" --onnx "$OUT/mobilenet_v1-224.onnx" --resolution 224
        "$LITECNN" compress "$OUT/mobilenet_v1-224.onnx" --data shapes --samples 200 --structured 0.5 \
            --out "$OUT/mobilenet_v1-224-half.lcz" --json > "$OUT/mobilenet_v1-224-half.json"
        for model in "$OUT/mobilenet_v1-224.onnx" "$OUT/mobilenet_v1-224-half.lcz"; do
            for threads in 1 2; do
                "$LITECNN" bench "$model" --threads $threads --runs 30 --json > "$model.bench$threads.json"
            done
        done
        ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
    esac
done

python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None
print("| model | stages | fp32 | compressed | ratio | top-1 before | top-1 after |")
print("|---|---|---:|---:|---:|---:|---:|")
for name in ["squeezenet", "alexnet", "vgg16", "mobilenet_v2-per-channel", "mobilenet_v2-per-tensor", "mobilenet_v1-structured"]:
    r = load(name)
    if not r: continue
    stages = " → ".join(s["stage"] for s in r["stages"][1:])
    fp32 = r["stages"][0]["bytes"]
    last = r["stages"][-1]
    print(f"| {r['model']} ({name}) | {stages} | {fp32/1e6:.2f} MB | {r['bytes']/1e6:.3f} MB | {r['ratio']:.1f}× "
          f"| {r['top1_before']:.2f} | {last['top1']:.2f} |")
b = {}
for model in ["mobilenet_v1-224.onnx", "mobilenet_v1-224-half.lcz"]:
    for t in (1, 2):
        p = os.path.join(out, f"{model}.bench{t}.json")
        if os.path.exists(p): b[(model, t)] = json.load(open(p))["median_ms"]
if b:
    print()
    print("| MobileNet V1 224×224, batch 1 | threads | median ms | speed-up |")
    print("|---|---:|---:|---:|")
    for t in (1, 2):
        base, half = b.get(("mobilenet_v1-224.onnx", t)), b.get(("mobilenet_v1-224-half.lcz", t))
        if base and half:
            print(f"| full | {t} | {base:.2f} | |")
            print(f"| half the multiply-adds (structured) | {t} | {half:.2f} | {base/half:.2f}× |")
EOF

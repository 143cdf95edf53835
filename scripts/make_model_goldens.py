#!/usr/bin/env python3
"""Whole-network golden outputs for LiteCNN's model zoo, computed by PyTorch/torchvision.

No weight file is committed: every parameter and buffer is a closed-form function of its state_dict name and
element index (`formula_tensor`), which the Swift test (Tests/LiteCNNModelsTests/ModelGoldenTests.swift) computes
the same way. Only the logits are committed, so the fixture stays a few KiB while the check covers the whole
architecture: layer order, padding, strides, pooling modes, flatten order, channel shuffle, parameter names.

Run by hand (CI never installs torch):

    ~/.cache/litecnn-bench/venv/bin/python scripts/make_model_goldens.py

MobileNet V1 and ShuffleNet V1 are not in torchvision; they come from ../shared/bench/models.py (the papers' networks).
"""
import json
import math
import os
import sys

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "LiteCNNModelsTests", "Fixtures", "model_goldens.json")
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))


def name_phase(name):
    """A phase in [0, 2π) from the parameter's name: Σ byte·(position+1) mod 1009, scaled."""
    return (sum(b * (i + 1) for i, b in enumerate(name.encode())) % 1009) / 1009.0 * 2.0 * math.pi


def formula_tensor(name, shape):
    """The value of every element of parameter `name` (float64 math, then float32)."""
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.int64)
    # A decorrelated pseudo-random pattern whose arguments stay small, so float64 sin agrees across libraries.
    s = torch.sin(name_phase(name) + 0.7 * (i % 8963).to(torch.float64)
                  + 2.0 * math.pi * ((i * i) % 10007).to(torch.float64) / 10007.0)
    if name.endswith("running_var"):
        v = 1.0 + 0.25 * (1.0 + s)
    elif name.endswith("running_mean"):
        v = 0.1 * s
    elif len(shape) == 1 and name.endswith("weight"):
        v = 1.0 + 0.1 * s
    elif len(shape) == 1:
        v = 0.1 * s
    else:
        fan_in = math.prod(shape[1:])
        v = math.sqrt(4.0 / fan_in) * s  # variance 2/fan_in (Kaiming)
    return v.to(torch.float32).reshape(shape)


def formula_input(shape):
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.int64)
    return torch.sin(0.05 * (i % 7919).to(torch.float64) + ((i * i) % 101).to(torch.float64)).to(torch.float32).reshape(shape)


def models():
    import models as paper  # ../shared/bench/models.py
    tv = torchvision.models
    k = 10
    return [
        ("squeezenet1_0", lambda: tv.squeezenet1_0(num_classes=k), (2, 3, 64, 64)),
        ("squeezenet1_1", lambda: tv.squeezenet1_1(num_classes=k), (2, 3, 64, 64)),
        ("mobilenet_v1", lambda: paper.MobileNetV1(num_classes=k), (2, 3, 64, 64)),
        ("mobilenet_v2", lambda: tv.mobilenet_v2(num_classes=k), (2, 3, 80, 48)),
        ("mobilenet_v3_large", lambda: tv.mobilenet_v3_large(num_classes=k), (2, 3, 64, 64)),
        ("mobilenet_v3_small", lambda: tv.mobilenet_v3_small(num_classes=k), (2, 3, 64, 64)),
        ("shufflenet_v1", lambda: paper.ShuffleNetV1(groups=3, num_classes=k), (2, 3, 64, 64)),
        ("shufflenet_v2_x0_5", lambda: tv.shufflenet_v2_x0_5(num_classes=k), (2, 3, 64, 64)),
        ("shufflenet_v2_x1_0", lambda: tv.shufflenet_v2_x1_0(num_classes=k), (2, 3, 64, 64)),
        ("efficientnet_b0", lambda: tv.efficientnet_b0(num_classes=k), (2, 3, 64, 64)),
        ("resnet18", lambda: tv.resnet18(num_classes=k), (2, 3, 64, 64)),
        ("alexnet", lambda: tv.alexnet(num_classes=k), (1, 3, 64, 64)),
        ("vgg16", lambda: tv.vgg16(num_classes=k), (1, 3, 32, 32)),
    ]


def main():
    torch.set_grad_enabled(False)
    cases = []
    for name, build, shape in models():
        m = build().eval()
        state = m.state_dict()
        for key, value in state.items():
            if key.endswith("num_batches_tracked"):
                continue
            value.copy_(formula_tensor(key, list(value.shape)))
        x = formula_input(shape)
        y = m(x)
        assert torch.isfinite(y).all(), name
        cases.append({"model": name, "classes": 10, "input_nchw": list(shape),
                      "output": [float(f"{v:.8g}") for v in y.flatten().tolist()],
                      "output_shape": list(y.shape)})
        print(f"{name:22s} {tuple(shape)} → {tuple(y.shape)}  |y|max={y.abs().max():.4g}", file=sys.stderr)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/make_model_goldens.py", "torch": torch.__version__,
                   "torchvision": torchvision.__version__, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden values for LiteCNN's layer tests, computed by PyTorch.

Run by hand (CI never installs torch; the output is committed):

    python3 -m pip install torch numpy      # or use the bench venv: ~/.cache/litecnn-bench/venv/bin/python
    python3 scripts/make_layer_goldens.py   # writes Tests/LiteCNNLayersTests/Fixtures/layer_goldens.json

Every case holds, in PyTorch's layouts (NCHW activations, OIHW weights):
  config      how to build the layer,
  input       x, a small random tensor,
  params      the layer's parameters and buffers by state_dict name,
  output      y = layer(x),
  probe       R, random weights of the scalar L = sum(y * R),
  grad_input  dL/dx, grad_params dL/dθ by name (computed by autograd),
  after       buffers after the forward (BatchNorm running statistics in training mode).
Tensors are {"shape": [...], "data": [...]} with float32 values written as decimal strings of 9 significant digits.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

torch.manual_seed(20261126)
torch.use_deterministic_algorithms(True)
OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "LiteCNNLayersTests", "Fixtures", "layer_goldens.json")


def enc(t):
    t = t.detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "data": [float(f"{v:.9g}") for v in t.flatten().tolist()]}


def case(name, module, x, config, train=False, smooth_input=False):
    """Runs `module` on `x` and records forward and backward values."""
    module.train(train)
    params_before = {k: v.clone() for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    x = x.clone().requires_grad_(True)
    y = module(x)
    probe = torch.randn_like(y)
    (y * probe).sum().backward()
    return {
        "name": name,
        "config": config,
        "train": train,
        "input": enc(x),
        "params": {k: enc(v) for k, v in params_before.items()},
        "output": enc(y),
        "probe": enc(probe),
        "grad_input": enc(x.grad),
        "grad_params": {k: enc(p.grad) for k, p in module.named_parameters() if p.grad is not None},
        "after": {k: enc(v) for k, v in module.state_dict().items()
                  if k.startswith("running") or ".running" in k},
    }


class Padded(nn.Module):
    """Asymmetric zero padding then a convolution (PyTorch's Conv2d pads symmetrically only)."""

    def __init__(self, pad, conv):
        super().__init__()
        self.pad, self.conv = pad, conv

    def forward(self, x):
        left, right, top, bottom = self.pad
        return self.conv(F.pad(x, (left, right, top, bottom)))


class Shuffle(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.g = g

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.g, c // self.g, h, w).transpose(1, 2).reshape(n, c, h, w)


class Func(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


def randomize_bn(bn):
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return bn


def main():
    cases = []
    r = lambda *s: torch.randn(*s)

    # Convolutions: (in, out, kernel, stride, padding, dilation, groups, bias, input H, W)
    convs = [
        ("conv3x3_s1_p1", 5, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1, True, 6, 5),
        ("conv3x3_s2_p1_odd", 3, 17, (3, 3), (2, 2), (1, 1), (1, 1), 1, True, 9, 7),
        ("conv1x1_nobias", 17, 5, (1, 1), (1, 1), (0, 0), (1, 1), 1, False, 4, 3),
        ("conv1x3_p0x1", 4, 6, (1, 3), (1, 1), (0, 1), (1, 1), 1, True, 5, 5),
        ("conv3x1_s2", 4, 6, (3, 1), (2, 1), (1, 0), (1, 1), 1, True, 7, 4),
        ("conv3x3_dil2", 3, 4, (3, 3), (1, 1), (2, 2), (2, 2), 1, True, 7, 8),
        ("conv_grouped3", 6, 9, (3, 3), (1, 1), (1, 1), (1, 1), 3, False, 5, 5),
        ("conv_grouped_1x1_g4", 8, 12, (1, 1), (1, 1), (0, 0), (1, 1), 4, False, 3, 3),
        ("depthwise3x3_s2", 5, 5, (3, 3), (2, 2), (1, 1), (1, 1), 5, False, 7, 9),
        ("depthwise5x5_s1", 3, 3, (5, 5), (1, 1), (2, 2), (1, 1), 3, True, 6, 6),
        ("depthwise_multiplier2", 3, 6, (3, 3), (1, 1), (1, 1), (1, 1), 3, True, 4, 5),
        ("conv7x7_s2_p3", 3, 4, (7, 7), (2, 2), (3, 3), (1, 1), 1, True, 11, 10),
    ]
    for name, cin, cout, k, s, p, d, g, b, h, w in convs:
        m = nn.Conv2d(cin, cout, k, s, p, d, g, b)
        cfg = dict(type="conv", inputChannels=cin, outputChannels=cout, kernel=list(k), stride=list(s),
                   padding=[p[0], p[1], p[0], p[1]], dilation=list(d), groups=g, bias=b)
        cases.append(case(name, m, r(2, cin, h, w), cfg))
    # Asymmetric padding: (left, right, top, bottom) = (0, 1, 1, 0)
    m = Padded((0, 1, 1, 0), nn.Conv2d(3, 4, 2, 2, 0))
    cfg = dict(type="conv", inputChannels=3, outputChannels=4, kernel=[2, 2], stride=[2, 2],
               padding=[1, 0, 0, 1], dilation=[1, 1], groups=1, bias=True, prefix="conv.")
    cases.append(case("conv2x2_s2_asymmetric_pad", m, r(1, 3, 5, 6), cfg))

    # BatchNorm in training (batch statistics, running-stat update) and eval.
    bn = randomize_bn(nn.BatchNorm2d(5))
    cases.append(case("batchnorm_train", bn, r(3, 5, 4, 3) * 2 + 1, dict(type="batchnorm", channels=5), train=True))
    bn = randomize_bn(nn.BatchNorm2d(5))
    cases.append(case("batchnorm_eval", bn, r(2, 5, 3, 3), dict(type="batchnorm", channels=5)))

    cases.append(case("linear", nn.Linear(7, 5), r(3, 7), dict(type="linear", inFeatures=7, outFeatures=5, bias=True)))
    cases.append(case("linear_nobias", nn.Linear(4, 6, bias=False), r(2, 4),
                      dict(type="linear", inFeatures=4, outFeatures=6, bias=False)))

    # Activations over a range that crosses every kink (values exactly at kinks avoided).
    act_input = torch.linspace(-4.1, 4.1, 2 * 3 * 4 * 5).reshape(2, 5, 3, 4)
    for name, mod in [("relu", nn.ReLU()), ("relu6", nn.ReLU6()), ("sigmoid", nn.Sigmoid()),
                      ("hardsigmoid", nn.Hardsigmoid()), ("hardswish", nn.Hardswish()), ("silu", nn.SiLU())]:
        cases.append(case(name, mod, act_input * 2.0 if name == "relu6" else act_input, dict(type=name)))

    # Pooling.
    pools = [
        ("maxpool3_s2_ceil", nn.MaxPool2d(3, 2, ceil_mode=True), dict(type="maxpool", kernel=3, stride=2, padding=0, ceil=True), (2, 3, 8, 7)),
        ("maxpool3_s2_p1", nn.MaxPool2d(3, 2, 1), dict(type="maxpool", kernel=3, stride=2, padding=1, ceil=False), (1, 4, 7, 6)),
        ("maxpool2_s2", nn.MaxPool2d(2), dict(type="maxpool", kernel=2, stride=2, padding=0, ceil=False), (1, 3, 6, 5)),
        ("avgpool3_s2_p1_incl", nn.AvgPool2d(3, 2, 1), dict(type="avgpool", kernel=3, stride=2, padding=1, ceil=False, countIncludePad=True), (1, 3, 7, 6)),
        ("avgpool3_s2_p1_excl_ceil", nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
         dict(type="avgpool", kernel=3, stride=2, padding=1, ceil=True, countIncludePad=False), (2, 2, 8, 7)),
        ("adaptiveavg_3x2", nn.AdaptiveAvgPool2d((3, 2)), dict(type="adaptiveavg", output=[3, 2]), (1, 3, 7, 5)),
        ("adaptiveavg_6x6_from_13", nn.AdaptiveAvgPool2d((6, 6)), dict(type="adaptiveavg", output=[6, 6]), (1, 2, 13, 13)),
    ]
    for name, mod, cfg, shape in pools:
        cases.append(case(name, mod, r(*shape), cfg))
    cases.append(case("global_avgpool", Func(lambda x: x.mean((2, 3))), r(2, 5, 3, 4), dict(type="globalavg")))
    cases.append(case("flatten", nn.Flatten(), r(2, 3, 2, 4), dict(type="flatten")))
    cases.append(case("channel_shuffle_g3", Shuffle(3), r(1, 12, 2, 3), dict(type="shuffle", groups=3)))
    cases.append(case("softmax", nn.Softmax(dim=1), r(3, 7) * 3, dict(type="softmax")))

    se = torchvision.ops.SqueezeExcitation(8, 3)
    cases.append(case("squeeze_excitation_relu_sigmoid", se, r(2, 8, 4, 3),
                      dict(type="se", inputChannels=8, squeezeChannels=3, activation="relu", gate="sigmoid")))
    se = torchvision.ops.SqueezeExcitation(6, 4, activation=nn.ReLU, scale_activation=nn.Hardsigmoid)
    cases.append(case("squeeze_excitation_relu_hardsigmoid", se, r(1, 6, 3, 3),
                      dict(type="se", inputChannels=6, squeezeChannels=4, activation="relu", gate="hardsigmoid")))
    se = torchvision.ops.SqueezeExcitation(6, 2, activation=nn.SiLU)
    cases.append(case("squeeze_excitation_silu_sigmoid", se, r(2, 6, 2, 3),
                      dict(type="se", inputChannels=6, squeezeChannels=2, activation="silu", gate="sigmoid")))

    # Softmax cross-entropy, with and without label smoothing: loss and dL/dlogits.
    for smoothing in (0.0, 0.1):
        logits = (r(4, 6) * 2).requires_grad_(True)
        labels = torch.tensor([0, 5, 2, 2])
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        loss.backward()
        cases.append({"name": f"cross_entropy_ls{smoothing}", "config": dict(type="cross_entropy", smoothing=smoothing),
                      "train": True, "input": enc(logits), "labels": labels.tolist(), "loss": float(f"{loss.item():.9g}"),
                      "grad_input": enc(logits.grad), "params": {}, "grad_params": {}, "after": {},
                      "output": enc(loss.reshape(1)), "probe": enc(torch.ones(1))})

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/make_layer_goldens.py", "torch": torch.__version__, "cases": cases}, f,
                  separators=(",", ":"))
    print(f"{len(cases)} cases → {os.path.relpath(OUT)} ({os.path.getsize(OUT) / 1024:.0f} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()

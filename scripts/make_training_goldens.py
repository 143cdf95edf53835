#!/usr/bin/env python3
"""Golden values for LiteCNN's training tests (optimizers, schedules, distillation, a full training step), by PyTorch.

Run by hand (CI never installs torch; the outputs are committed):

    ~/.cache/litecnn-bench/venv/bin/python scripts/make_training_goldens.py

writes into Tests/LiteCNNTrainingTests/Fixtures/:
  optimizer_goldens.json      torch.optim.SGD / RMSprop / Adam / AdamW on a fixed 7-element parameter and a fixed
                              sequence of 5 gradients (with a learning rate that changes between steps): the parameter
                              after every step.
  schedule_goldens.json       torch.optim.lr_scheduler StepLR / ExponentialLR (stepped per epoch), CosineAnnealingLR /
                              LinearLR (stepped per iteration): the learning rate of every iteration.
  distillation_golden.json    Hinton et al.'s distillation loss, alpha*T^2*KLDivLoss(batchmean)(log_softmax(s/T),
                              softmax(t/T)) + (1 - alpha)*cross_entropy(s, labels, label_smoothing), and its gradient
                              with respect to the student logits (autograd).
  training_step_golden.json   3 training steps (forward, cross-entropy, backward, SGD with momentum 0.9 and weight
                              decay 5e-4) of Conv2d(3,4,3,padding=1) + BatchNorm2d(4) + ReLU + MaxPool2d(2) + Flatten +
                              Linear(36,5) on a batch of 4 NCHW 3x6x6 images: the 3 losses and every parameter and
                              BatchNorm running statistic after the third step.
Tensors are {"shape": [...], "data": [...]} with float32 values written with 9 significant digits (exact round trip).
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(20261126)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "LiteCNNTrainingTests", "Fixtures")


def enc(t):
    t = torch.as_tensor(t).detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "data": [float(f"{v:.9g}") for v in t.flatten().tolist()]}


def write(name, payload):
    path = os.path.join(FIXTURES, name)
    with open(path, "w") as f:
        json.dump(payload, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


# MARK: Optimizers

def optimizer_goldens():
    initial = torch.tensor([0.5, -1.25, 2.0, 0.0, -0.03125, 3.5, -2.75])
    gradients = [torch.randn(7) * scale for scale in (1.0, 0.5, 2.0, 0.1, 1.5)]
    gradients[3][3] = 0.0  # an exactly zero gradient element
    rates = [0.1, 0.1, 0.05, 0.05, 0.02]  # a schedule that changes the rate between steps
    configs = [
        ("sgd", {}),
        ("sgd", {"momentum": 0.9}),
        ("sgd", {"momentum": 0.9, "dampening": 0.1}),
        ("sgd", {"momentum": 0.9, "nesterov": True}),
        ("sgd", {"momentum": 0.9, "weight_decay": 0.01}),
        ("sgd", {"weight_decay": 0.05}),
        ("rmsprop", {}),
        ("rmsprop", {"alpha": 0.9, "eps": 1e-3}),
        ("rmsprop", {"centered": True}),
        ("rmsprop", {"momentum": 0.9}),
        ("rmsprop", {"momentum": 0.9, "centered": True, "weight_decay": 0.01}),
        ("adam", {}),
        ("adam", {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01}),
        ("adamw", {}),
        ("adamw", {"weight_decay": 0.1, "betas": (0.9, 0.95)}),
    ]
    constructors = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam,
                    "adamw": torch.optim.AdamW}
    cases = []
    for kind, options in configs:
        p = nn.Parameter(initial.clone())
        opt = constructors[kind]([p], lr=rates[0], **options)
        trajectory = []
        for rate, g in zip(rates, gradients):
            for group in opt.param_groups:
                group["lr"] = rate
            p.grad = g.clone()
            opt.step()
            trajectory.append(enc(p))
        cases.append({"optimizer": kind, "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
                      "after": trajectory})
    write("optimizer_goldens.json", {"initial": enc(initial), "gradients": [enc(g) for g in gradients],
                                     "learning_rates": rates, "cases": cases})


# MARK: Schedules

def lr_trace(make_scheduler, steps, steps_per_epoch, per_epoch, base=0.1):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    scheduler = make_scheduler(opt)
    rates = []
    for step in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        if not per_epoch or (step + 1) % steps_per_epoch == 0:
            scheduler.step()
    return rates


def schedule_goldens():
    s = torch.optim.lr_scheduler
    cases = []
    steps_per_epoch, epochs = 3, 7
    total = steps_per_epoch * epochs
    cases.append({"schedule": "step", "initial": 0.1, "step_epochs": 2, "gamma": 0.5,
                  "steps_per_epoch": steps_per_epoch, "total_steps": total,
                  "rates": lr_trace(lambda o: s.StepLR(o, step_size=2, gamma=0.5), total, steps_per_epoch, True)})
    cases.append({"schedule": "exponential", "initial": 0.1, "gamma": 0.97, "every_epochs": 1,
                  "steps_per_epoch": steps_per_epoch, "total_steps": total,
                  "rates": lr_trace(lambda o: s.ExponentialLR(o, gamma=0.97), total, steps_per_epoch, True)})
    cases.append({"schedule": "cosine", "initial": 0.1, "minimum": 0.001,
                  "steps_per_epoch": steps_per_epoch, "total_steps": total,
                  "rates": lr_trace(lambda o: s.CosineAnnealingLR(o, T_max=total, eta_min=0.001), total,
                                    steps_per_epoch, False)})
    cases.append({"schedule": "cosine", "initial": 0.1, "minimum": 0.0,
                  "steps_per_epoch": steps_per_epoch, "total_steps": total,
                  "rates": lr_trace(lambda o: s.CosineAnnealingLR(o, T_max=total), total, steps_per_epoch, False)})
    # SqueezeNet's "0.04 decreasing linearly": from the initial rate at step 0 to the final one at the last step.
    cases.append({"schedule": "linear", "initial": 0.04, "final": 0.0004,
                  "steps_per_epoch": steps_per_epoch, "total_steps": total,
                  "rates": lr_trace(lambda o: s.LinearLR(o, start_factor=1.0, end_factor=0.01, total_iters=total - 1),
                                    total, steps_per_epoch, False, base=0.04)})
    write("schedule_goldens.json", {"cases": cases})


# MARK: Distillation

def distillation_golden():
    cases = []
    for n, k, temperature, alpha, smoothing in ((4, 6, 4.0, 0.9, 0.1), (3, 5, 1.0, 0.5, 0.0), (2, 10, 8.0, 1.0, 0.0)):
        student = (torch.randn(n, k) * 3).requires_grad_(True)
        teacher = torch.randn(n, k) * 4
        teacher[0, 0] = 40.0  # a confident teacher: some softmax(t/T) entries far below the largest
        labels = torch.randint(0, k, (n,))
        kl = F.kl_div(F.log_softmax(student / temperature, dim=1), F.softmax(teacher / temperature, dim=1),
                      reduction="batchmean")
        ce = F.cross_entropy(student, labels, label_smoothing=smoothing)
        loss = alpha * temperature ** 2 * kl + (1 - alpha) * ce
        loss.backward()
        cases.append({"temperature": temperature, "alpha": alpha, "label_smoothing": smoothing,
                      "student": enc(student), "teacher": enc(teacher), "labels": labels.tolist(),
                      "loss": float(f"{loss.item():.9g}"), "gradient": enc(student.grad)})
    write("distillation_golden.json", {"cases": cases})


# MARK: A training step

def training_step_golden():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
    )
    with torch.no_grad():
        # Non-trivial BatchNorm affine parameters (the defaults are ones and zeros).
        net[1].weight.copy_(1 + 0.2 * torch.randn(4))
        net[1].bias.copy_(0.1 * torch.randn(4))
    initial = {name: enc(t) for name, t in net.state_dict().items() if not name.endswith("num_batches_tracked")}
    images = torch.randn(4, 3, 6, 6)
    labels = torch.tensor([0, 3, 1, 4])
    lr, momentum, weight_decay = 0.1, 0.9, 5e-4
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    net.train()
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(net(images), labels)
        loss.backward()
        opt.step()
        losses.append(float(f"{loss.item():.9g}"))
    final = {name: enc(t) for name, t in net.state_dict().items() if not name.endswith("num_batches_tracked")}
    write("training_step_golden.json", {
        "network": "Conv2d(3,4,3,padding=1) BatchNorm2d(4) ReLU MaxPool2d(2) Flatten Linear(36,5)",
        "learning_rate": lr, "momentum": momentum, "weight_decay": weight_decay,
        "images_nchw": enc(images), "labels": labels.tolist(),
        "initial": initial, "losses": losses, "final": final})


if __name__ == "__main__":
    optimizer_goldens()
    schedule_goldens()
    distillation_golden()
    training_step_golden()

#!/usr/bin/env python3
"""torchvision's state_dict names and shapes for the architecture tests (names must match one-to-one).

Run by hand (CI never installs torch):  ~/.cache/litecnn-bench/venv/bin/python scripts/make_state_dict_fixture.py
Writes Tests/LiteCNNModelsTests/Fixtures/state_dicts.json: {model: ["name d0,d1,…", …]} in state_dict order, without
`num_batches_tracked`. MobileNet V1 comes from ../shared/bench/models.py (torchvision has none).
"""
import json
import os
import sys

import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "LiteCNNModelsTests", "Fixtures", "state_dicts.json")
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))


def listing(model):
    return [f"{k} {','.join(map(str, v.shape))}" for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")]


def main():
    import models as paper
    tv = torchvision.models
    builders = {
        "squeezenet1_0": tv.squeezenet1_0, "squeezenet1_1": tv.squeezenet1_1, "alexnet": tv.alexnet,
        "vgg16": tv.vgg16, "vgg16_bn": tv.vgg16_bn, "resnet18": tv.resnet18, "resnet50": tv.resnet50,
        "mobilenet_v1": paper.MobileNetV1,
    }
    fixture = {name: listing(build()) for name, build in builders.items()}
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=0)
    print(f"{len(fixture)} models → {os.path.relpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

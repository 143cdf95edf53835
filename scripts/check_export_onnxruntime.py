#!/usr/bin/env python3
"""Check LiteCNN's ONNX export with onnxruntime (run by hand; needs onnx, onnxruntime, numpy).

1. Write the exported models with the Swift tests:
     LITECNN_EXPORT_DIR=/tmp/litecnn-export swift test -c release --scratch-path .build-export --filter ExportTests
   Each case leaves NAME.onnx, NAME.input.npy (NCHW) and NAME.output.npy (LiteCNN's forward) in that folder.
2. Run this script with a Python that has onnxruntime:
     python scripts/check_export_onnxruntime.py /tmp/litecnn-export
   It runs every NAME.onnx with onnxruntime (onnx.checker first) and prints max |Δ| against LiteCNN's output,
   relative to max |y|. Exit status 1 when any model differs by more than 1e-4·max|y| or fails to load.
"""
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> int:
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/litecnn-export")
    models = sorted(folder.glob("*.onnx"))
    if not models:
        print(f"no .onnx files in {folder}")
        return 1
    failures = 0
    for path in models:
        name = path.name[: -len(".onnx")]
        try:
            onnx.checker.check_model(str(path))
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            x = np.load(folder / f"{name}.input.npy")
            expected = np.load(folder / f"{name}.output.npy")
            (actual,) = session.run(["logits"], {"input": x})
            scale = float(np.abs(expected).max())
            delta = float(np.abs(actual - expected).max())
            ok = actual.shape == expected.shape and delta <= 1e-4 * max(scale, 1e-3)
            failures += 0 if ok else 1
            print(f"{'ok  ' if ok else 'FAIL'} {name:32s} max|Δ| {delta:.3e}  max|y| {scale:.3e}  "
                  f"rel {delta / max(scale, 1e-30):.2e}  shape {actual.shape}")
        except Exception as error:  # report and go on with the next model
            failures += 1
            print(f"FAIL {name:32s} {type(error).__name__}: {error}")
    print(f"{len(models) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

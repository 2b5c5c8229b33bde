"""Benchmark: the shipped model on the MNIST test set (10,000 digits, never used in training or tuning).

Prints accuracy, error rate and expected calibration error (15 bins) of the calibrated
probabilities. Reproduce:

    python benchmarks/mnist_test.py --data ../shared/data/mnist [--model PATH] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.classify.checkpoint import load_checkpoint
from pipeline.classify.predictor import Predictor
from pipeline.data import load_mnist
from pipeline.evaluate import ece
from pipeline.classify.predictor import resolve_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/mnist"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=1000)
    args = ap.parse_args()
    device = resolve_device(args.device)
    model = load_checkpoint(args.model, device)
    images, labels = load_mnist(args.data, "test")
    pred = Predictor(model, device, args.batch_size)
    t0 = time.perf_counter()
    probs = pred.probabilities(images.astype(np.float32) / 255.0)
    dt = time.perf_counter() - t0
    top = probs[:, :10].argmax(1)  # a digit is asked for: argmax over the ten digit classes
    conf = probs[np.arange(len(top)), top]
    correct = top == labels
    print(json.dumps({
        "model": str(model.path),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "n": int(len(labels)),
        "accuracy": round(float(correct.mean()), 5),
        "error_rate": round(float(1 - correct.mean()), 5),
        "errors": int((~correct).sum()),
        "ece_15": round(ece(conf, correct), 5),
        "temperature": model.temperature,
        "digits_per_second": round(len(labels) / dt, 1),
    }, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: crops per second of the two CPU inference engines (PyTorch vs ONNX Runtime).

Both run the same calibrated network (normalisation + CNN + temperature softmax) on
``pipeline.export.parity_crops`` at several batch sizes, with the same number of threads.
Prints one JSON object. Reproduce:

    python benchmarks/engine_speed.py [--model PATH] [--threads 2] [--batch-sizes 1 64 256 1024]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from pipeline.classify.checkpoint import load_checkpoint
from pipeline.classify.predictor import BasePredictor, Predictor
from pipeline.export import onnx_predictor_for, parity_crops


def crops_per_second(pred: BasePredictor, x: np.ndarray, min_seconds: float) -> float:
    """Best of repeated timed passes over ``x`` (one warm-up pass first)."""
    pred.probabilities(x)
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        pred.probabilities(x)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return len(x) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 256, 1024])
    ap.add_argument("--seconds", type=float, default=2.0, help="time spent per engine and batch size")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_checkpoint(args.model, "cpu")
    rows = []
    for bs in args.batch_sizes:
        x = parity_crops(max(bs, 256))  # at least 256 crops per pass (batch 1: 256 calls)
        engines = {
            "torch": Predictor(model, torch.device("cpu"), batch_size=bs),
            "onnxruntime": onnx_predictor_for(model, batch_size=bs, threads=args.threads),
        }
        row = {"batch_size": bs}
        for name, pred in engines.items():
            row[name] = round(crops_per_second(pred, x, args.seconds), 1)
        row["onnx_speedup"] = round(row["onnxruntime"] / row["torch"], 2)
        rows.append(row)
    print(json.dumps({
        "model": str(model.path),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch_threads": torch.get_num_threads(),
        "ort_threads": args.threads,
        "crops_per_second": rows,
    }, indent=2))


if __name__ == "__main__":
    main()

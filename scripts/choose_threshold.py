"""Choose the shipped model's default --min-confidence from held-out data and store it.

Data: the MNIST validation digits the training run held out (the last ``val_size`` of the
seeded permutation in ``pipeline.train``; never trained on, the test set is not touched),
read through the calibrated classifier. Criterion: the lowest threshold at which at most
1 error per 1000 unflagged digits remains (``pipeline.evaluate.recommend_threshold``).
Prints the threshold table, then writes the threshold into the checkpoint:

    python scripts/choose_threshold.py --data ../shared/data/mnist [--model PATH] [--target-error 0.001] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pipeline.classify.checkpoint import default_checkpoint_path, load_checkpoint, store_threshold
from pipeline.classify.predictor import Predictor
from pipeline.config import TrainConfig, build
from pipeline.data import load_mnist, validation_split
from pipeline.evaluate import ece, recommend_threshold, threshold_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/mnist"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--config", type=Path, default=Path("configs/train.yaml"), help="the training config (seed, val_size)")
    ap.add_argument("--target-error", type=float, default=0.001)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    cfg = build(TrainConfig, args.config)
    path = args.model or default_checkpoint_path()
    model = load_checkpoint(path)
    images, labels = load_mnist(args.data, "train")
    _, val = validation_split(len(images), cfg.val_seed, cfg.val_size)
    probs = Predictor(model, torch.device("cpu"), 1000).probabilities(images[val].astype(np.float32) / 255.0)
    top = probs[:, :10].argmax(1)
    conf = probs[np.arange(len(top)), top]
    correct = top == labels[val]
    table = [threshold_metrics(conf, correct, t) for t in (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)]
    thr = recommend_threshold(conf, correct, args.target_error)
    if thr is None:
        raise SystemExit(f"no threshold reaches {args.target_error} unflagged error on the validation digits")
    thr = float(round(thr, 3))
    chosen = threshold_metrics(conf, correct, thr)
    report = {"model": str(path), "validation_digits": int(len(val)), "accuracy": float(correct.mean()), "ece": ece(conf, correct),
              "target_error": args.target_error, "threshold": thr, "at_threshold": chosen, "table": table}
    print(json.dumps(report, indent=1, default=float))
    if not args.dry_run:
        store_threshold(path, thr, {"data": "MNIST validation digits held out in training", "n": int(len(val)),
                                    "target_error": args.target_error, "flag_rate": float(chosen["flag_rate"]),
                                    "script": "scripts/choose_threshold.py"})


if __name__ == "__main__":
    main()

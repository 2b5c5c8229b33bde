"""Benchmark: how often non-digit marks in digit cells come out flagged (held-out set).

Draws letters, crosses, ticks, scribbles, crossed-out digits (MNIST **test** digits),
smudges, hatching, dots and crossed circles with ``pipeline.nondigits.make_nondigits`` under
a seed the training never used, normalises them like segmentation output, and reads them with
the shipped model. A mark counts as flagged when its digit confidence is below the model's
threshold or its "not a digit" probability is above 0.5 (``pipeline.assemble``). Reproduce:

    python benchmarks/nondigits_flagged.py --data ../shared/data/mnist --n 4500 --seed 999
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pipeline.assemble import REJECT_LEVEL
from pipeline.classify.checkpoint import load_checkpoint
from pipeline.classify.predictor import Predictor
from pipeline.data import load_mnist
from pipeline.nondigits import KINDS, make_nondigits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/mnist"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--n", type=int, default=4500)
    ap.add_argument("--seed", type=int, default=999)
    args = ap.parse_args()
    model = load_checkpoint(args.model)
    test_digits, _ = load_mnist(args.data, "test")
    marks = make_nondigits(args.n, args.seed, test_digits[:1000])
    p = Predictor(model, torch.device("cpu"), 1000).probabilities(marks)
    top = p[:, :10].argmax(1)
    conf = p[np.arange(len(top)), top]
    reject = p[:, 10] if p.shape[1] > 10 else np.zeros(len(p))
    flagged = (conf < model.threshold) | (reject > REJECT_LEVEL)
    kinds = np.array([KINDS[i % len(KINDS)] for i in range(args.n)])
    print(json.dumps({
        "model": str(model.path), "threshold": model.threshold, "n": args.n, "seed": args.seed,
        "flagged": round(float(flagged.mean()), 4),
        "by_kind": {k: round(float(flagged[kinds == k].mean()), 4) for k in KINDS},
    }, indent=1))


if __name__ == "__main__":
    main()

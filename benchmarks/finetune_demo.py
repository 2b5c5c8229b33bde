"""Benchmark: fine-tuning on a writer style the model reads badly, and what it costs on plain MNIST.

Draws a crop folder DIR/<digit>/*.png from MNIST **test** digits in a systematic style
(``heavy``: a thick marker; ``outline``: hollow, double-line strokes), dark ink on white,
3x MNIST size; fine-tunes the shipped (or --model) checkpoint on it (``digitform train
--finetune``), and prints one JSON object: held-out accuracy before/after, and accuracy on
2,000 plain MNIST test digits not used for the crops before/after (forgetting). Reproduce:

    python benchmarks/finetune_demo.py --style heavy --per-class 50 --epochs 5 [--lr 1e-3] [--mix-mnist]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from pipeline.classify.checkpoint import load_checkpoint
from pipeline.classify.predictor import Predictor
from pipeline.config import FinetuneConfig
from pipeline.data import load_mnist
from pipeline.finetune import finetune


def styled(img: np.ndarray, style: str) -> np.ndarray:
    """One MNIST digit (28x28 uint8, ink = 255) -> an (84, 84) uint8 dark-ink-on-white image."""
    big = cv2.resize(img, (84, 84), interpolation=cv2.INTER_LINEAR)
    if style == "heavy":
        big = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17)))
    elif style == "outline":
        big = cv2.dilate(big, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
        big = cv2.morphologyEx(((big > 100) * 255).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    else:
        raise ValueError(style)
    return 255 - big


def write_crops(root: Path, images: np.ndarray, labels: np.ndarray, per_class: int, style: str) -> None:
    """``root/<digit>/NNN.png``: the first ``per_class`` test images of each digit, styled."""
    for d in range(10):
        (root / str(d)).mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(np.flatnonzero(labels == d)[:per_class]):
            cv2.imwrite(str(root / str(d) / f"{k:03d}.png"), styled(images[i], style))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/mnist"))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--style", choices=["heavy", "outline"], default="heavy")
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=FinetuneConfig.model_fields["lr"].default)
    ap.add_argument("--mix-mnist", action="store_true", help="mix MNIST training digits into each batch (--data)")
    args = ap.parse_args()
    images, labels = load_mnist(args.data, "test")
    used = np.zeros(len(labels), bool)
    for d in range(10):
        used[np.flatnonzero(labels == d)[: args.per_class]] = True
    plain = np.flatnonzero(~used)[:2000]
    x_plain = images[plain].astype(np.float32) / 255.0
    with tempfile.TemporaryDirectory() as tmp:
        crops = Path(tmp) / "crops"
        write_crops(crops, images, labels, args.per_class, args.style)
        cfg = FinetuneConfig(crops=crops, model=args.model, out=Path(tmp) / "ft.pt", epochs=args.epochs, seed=args.seed, lr=args.lr,
                             device="cpu", data=args.data if args.mix_mnist else None)
        start = load_checkpoint(args.model, "cpu")
        result = finetune(cfg, model=start)
        tuned = load_checkpoint(cfg.out, "cpu")
    acc = {}
    for name, m in (("before", start), ("after", tuned)):
        p = Predictor(m, torch.device("cpu"), 1000).probabilities(x_plain)
        acc[name] = round(float((p[:, :10].argmax(1) == labels[plain]).mean()), 4)
    print(json.dumps({
        "style": args.style, "per_class": args.per_class, "epochs": args.epochs, "lr": args.lr, "mix_mnist": args.mix_mnist,
        "n_finetune": result.n_finetune, "n_held_out": result.n_held_out,
        "held_out_accuracy": {"before": round(result.before_accuracy, 4), "after": round(result.after_accuracy, 4)},
        "held_out_nll": {"before": round(result.before_nll, 4), "after": round(result.after_nll, 4)},
        "temperature": {"before": round(result.temperature_before, 4), "after": round(result.temperature, 4)},
        "plain_mnist_accuracy": {"n": len(plain), **acc},
        "seconds": round(result.seconds, 1),
    }, indent=2))


if __name__ == "__main__":
    main()

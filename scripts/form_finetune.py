"""Fine-tune the digit model on its own crops of synthetic training forms.

MNIST digits are clean; the crops that segmentation cuts from scanned forms are not: box
lines removed where strokes cross them, strokes that stray over the border, neighbours'
fragments, binarisation, JPEG. This script draws training forms from the MNIST *training*
digits (``digitform synth --split train``: the digits ``digitform train`` trained on, its
held-out validation digits left out), runs them through box finding and segmentation
exactly as ``digitform process`` does, keeps every crop of a found cell whose truth is a
digit, and fine-tunes the model on them (``pipeline.finetune``, MNIST training digits mixed
in so that it does not forget them, non-digit marks for the reject class, temperature
refitted on 20% of the crops held out).

The forms measured on (``digitform synth``'s default test split, ``sample_forms/``,
``benchmarks/forms_accuracy.py``) share no digit image with these, and only the ``sample``
style is trained on by default, so the ``holdout`` style stays unseen in layout and
distortion too. After it, set the threshold again with ``scripts/choose_threshold.py``.

    python scripts/form_finetune.py --data ../shared/data/mnist [--forms DIR [DIR ...]]
        [--count N [N ...]] [--seed S [S ...]] [--style sample] [--epochs 3] [--mnist-share 0.75]
        [--out runs/finetune/forms.pt]

The shipped weights were made with (``runs/train/base.pt``: the output of ``digitform train --out
runs/train/base.pt``):

    python scripts/form_finetune.py --data ../shared/data/mnist --forms runs/train_forms runs/train_forms2 \
        --count 600 900 --seed 500000 500001 --epochs 3 --mnist-share 0.75 --model runs/train/base.pt \
        --out pipeline/classify/weights/digitnet.pt
    python scripts/choose_threshold.py --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import FinetuneConfig
from pipeline.finetune import finetune
from pipeline.io import read_pages
from pipeline.run import prepare_page
from pipeline.score import load_truth
from pipeline.synth import generate_forms

MATCH_IOU = 0.5  # a found cell takes the truth of the cell it overlaps this much (as in pipeline.score)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter) if inter > 0 else 0.0


def page_crops(truth_page: dict) -> tuple[list[np.ndarray], list[int]]:
    """The pipeline's crops of one training page with their truth digits.

    Returns:
        (crops, labels): (28, 28) float32 arrays in [0, 1] and ints 0-9, for the found
        cells that segmentation read as a mark and whose truth is a digit.
    """
    src = Path(truth_page["source"])
    pages = read_pages(src)
    try:
        for page in pages:
            if page.number == truth_page["page"]:
                break
        else:
            return [], []
    finally:
        pages.close()
    prep = prepare_page(page)
    flipped = truth_page.get("rotation") == 180 and prep.flipped is not None
    rows = prep.flipped if flipped else prep.crops
    truth = [(tuple(d["box"]), d.get("digit")) for f in truth_page["fields"] for d in f["digits"]]
    xs, ys = [], []
    for fc in rows:
        for crop in fc:
            if crop.blank or not truth:
                continue
            box, digit = max(truth, key=lambda t: _iou(t[0], crop.cell.box))
            if digit is not None and _iou(box, crop.cell.box) >= MATCH_IOU:
                xs.append(crop.pixels)
                ys.append(int(digit))
    return xs, ys


def forms_crops(forms: Path, count: int, seed: int, data: Path, style: str, workers: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The crops of one folder of training forms, drawn first when it has no truth file.

    Returns:
        (x, y, pages): (N, 28, 28) float32 crops in [0, 1], (N,) int64 truth digits, and the
        number of pages. The crops are cached in ``forms/crops.npz`` (uint8); delete it after
        changing box finding or segmentation.
    """
    truth_path = forms / "truth.json"
    if not truth_path.is_file():
        generate_forms(forms, count, seed, data, style=style, split="train")
    pages = load_truth(truth_path)
    cache = forms / "crops.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return z["x"].astype(np.float32) / 255.0, z["y"].astype(np.int64), len(pages)
    with Pool(workers) as pool:
        parts = pool.map(page_crops, pages)
    x = np.stack([c for xs, _ in parts for c in xs]).astype(np.float32)
    y = np.asarray([d for _, ys in parts for d in ys], np.int64)
    np.savez_compressed(cache, x=np.round(x * 255).astype(np.uint8), y=y)
    return np.round(x * 255).astype(np.float32) / 255.0, y, len(pages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/mnist"))
    ap.add_argument("--forms", type=Path, nargs="+", default=[Path("runs/train_forms")],
                    help="folders of training forms, each drawn when it has no truth.json (reused when present)")
    ap.add_argument("--count", type=int, nargs="+", default=[300], help="pages per folder (one value for all, or one per folder)")
    ap.add_argument("--seed", type=int, nargs="+", default=None, help="seed per folder [default: 500000, 500001, ...]")
    ap.add_argument("--style", default="sample")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--model", type=Path, default=None, help="start checkpoint [default: the shipped weights]")
    ap.add_argument("--out", type=Path, default=Path("runs/finetune/forms.pt"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mnist-share", type=float, default=0.75, help="share of each batch that is MNIST training digits")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    n = len(args.forms)
    counts = args.count * n if len(args.count) == 1 else args.count
    seeds = args.seed or [500000 + i for i in range(n)]
    seeds = seeds * n if len(seeds) == 1 and n > 1 else seeds
    if len(counts) != n or len(seeds) != n:
        ap.error("give one --count and one --seed per --forms folder (or one for all)")
    xs, ys, n_pages = [], [], 0
    for forms, count, seed in zip(args.forms, counts, seeds):
        x, y, pages = forms_crops(forms, count, seed, args.data, args.style, args.workers)
        xs.append(x)
        ys.append(y)
        n_pages += pages
    x, y = np.concatenate(xs), np.concatenate(ys)
    print(f"{len(y)} crops from {n_pages} pages; per digit {np.bincount(y, minlength=10).tolist()}", file=sys.stderr)
    cfg = FinetuneConfig(crops=args.forms[0], model=args.model, out=args.out, data=args.data, epochs=args.epochs, lr=args.lr, batch_size=64,
                         mnist_share=args.mnist_share)
    res = finetune(cfg, crops=(x, y))
    # record every folder of forms (the config holds one path) and how they were drawn
    ckpt = torch.load(args.out, map_location="cpu", weights_only=False)
    ckpt["metrics"]["finetune"]["crops"] = [str(f) for f in args.forms]
    ckpt["metrics"]["finetune"]["forms"] = {"style": args.style, "counts": counts, "seeds": seeds, "split": "train",
                                            "script": "scripts/form_finetune.py", "mnist_share": args.mnist_share}
    torch.save(ckpt, args.out)
    print(json.dumps(res.to_dict(), indent=1))


if __name__ == "__main__":
    main()

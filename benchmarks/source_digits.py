"""Benchmark: is a digit lost on the form, or was its MNIST source digit already hard?

``digitform synth`` records, per page, the MNIST index of every written digit
(``truth.json``: ``generator.pages[i].mnist_indices``, in the order the page's written
digits are listed). This script reads each source image with the model as it is (28 x 28,
no form, no segmentation) and sets that reading beside what ``digitform process`` read on the
form, for the digits that lie inside their cell and stayed legible (cause ``other`` of
``benchmarks/error_breakdown.py``): where the model is sure of the source digit
(``--sure``, 0.99) and still misreads or doubts it on the form, the loss comes from the
form (rendering, scan, segmentation, normalisation), not from the handwriting.

    digitform process runs/dev/20001 -o r.json
    python benchmarks/source_digits.py r.json runs/dev/20001/truth.json --data ../shared/data/mnist

Prints one JSON object: ``inside`` (digits counted), ``wrong`` and ``wrong_source_sure``
(misread or read blank on the form / of which the source is read right at ``--sure`` or
more), ``flagged_right`` and ``flagged_right_source_sure`` (read right but flagged / same).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipeline.score import LEGIBLE_INK, STRAYING, cell_digit, load_truth, loss_cause, match_cells, page_cells, page_key
from pipeline.writer import read_results


def source_rows(pred_pages: list[dict], truth_doc: dict, truth_pages: list[dict], source_p: np.ndarray,
                legible: float = LEGIBLE_INK, stray: float = STRAYING) -> list[dict]:
    """One row per written digit inside its cell and legible, whose cell was found.

    Args:
        pred_pages: ``digitform process`` pages. truth_doc: the raw ``truth.json`` (for
            ``generator.pages``); truth_pages: its pages as ``load_truth`` returns them.
        source_p: (n_mnist, 10) float model probabilities of every image of the MNIST split.

    Returns:
        Dicts with ``right`` (read right on the form), ``flagged`` and ``source_p`` (the
        model's probability of the true digit on the source image).

    Raises:
        ValueError: the truth file lists no MNIST indices, or they do not match its digits.
    """
    gen = truth_doc.get("generator", {}).get("pages")
    if not gen or len(gen) != len(truth_pages):
        raise ValueError("truth file has no per-page generator.mnist_indices: draw the forms again with digitform synth")
    preds = {page_key(p): p for p in pred_pages}
    rows = []
    for t, g in zip(truth_pages, gen):
        written = [(ti, d) for ti, (_, d) in enumerate(page_cells(t)) if cell_digit(d) is not None]
        idx = g.get("mnist_indices", [])
        if len(idx) != len(written):
            raise ValueError(f"{t['source']}: {len(written)} written digits but {len(idx)} MNIST indices")
        pred = preds.get(page_key(t))
        m = match_cells(pred, t)
        pcells = [d for _, d in page_cells(pred or {})]
        for (ti, d), mi in zip(written, idx):
            if loss_cause(d, ti in m, legible, stray) != "other":
                continue
            got = pcells[m[ti]]
            want = cell_digit(d)
            rows.append({"right": cell_digit(got) == want, "flagged": bool(got.get("flagged")), "source_p": float(source_p[mi, int(want)])})
    return rows


def summary(rows: list[dict], sure: float = 0.99) -> dict:
    """Counts of ``source_rows`` (see the module docstring)."""
    wrong = [r for r in rows if not r["right"]]
    fr = [r for r in rows if r["right"] and r["flagged"]]
    return {
        "inside": len(rows),
        "wrong": len(wrong),
        "wrong_source_sure": sum(r["source_p"] >= sure for r in wrong),
        "flagged_right": len(fr),
        "flagged_right_source_sure": sum(r["source_p"] >= sure for r in fr),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="output of digitform process (.json or .jsonl)")
    ap.add_argument("truth", type=Path, help="truth.json written by digitform synth")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/mnist"), help="folder of the MNIST IDX files")
    ap.add_argument("--model", type=Path, default=None, help="checkpoint (default: the shipped weights)")
    ap.add_argument("--sure", type=float, default=0.99, help="source probability that counts as sure")
    args = ap.parse_args()

    import torch

    from pipeline.classify.checkpoint import load_checkpoint
    from pipeline.classify.predictor import Predictor
    from pipeline.data import load_mnist

    doc = json.loads(args.truth.read_text())
    images, _ = load_mnist(args.data, doc["generator"].get("mnist_split", "test"))
    probs = Predictor(load_checkpoint(args.model), torch.device("cpu"), 1000).probabilities(images.astype(np.float32) / 255.0)[:, :10]
    rows = source_rows(read_results(args.results), doc, load_truth(args.truth), probs)
    print(json.dumps(summary(rows, args.sure)))


if __name__ == "__main__":
    main()

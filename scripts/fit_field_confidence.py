"""Fit the field-confidence model of ``pipeline.assemble`` on forms with a truth file.

A field's confidence should be the probability that its whole value is right. The product of
its cells' confidences assumes that only the classifier errs; on forms, cells missed or found
off their place, strokes lost with a box line and blank verdicts on written cells make fields
wrong while every cell is confident. This script reads forms (``digitform synth`` folders),
matches each truth field to the predicted field holding most of its found cells (as
``digitform score`` does), and fits a logistic regression (Cox, 1958; L2 penalty 0.1, Newton
iterations) of "the value is exactly right" on

    [ln(product of the cells' confidences), cells read as digits, cells read as blank,
     1 if the field carries a flag other than low_confidence, 1]

It prints the weights for ``FIELD_CONFIDENCE_WEIGHTS`` and, folder by folder left out, the
expected calibration error (15 bins) of the product and of the fitted model:

    python scripts/fit_field_confidence.py DIR [DIR ...] [--cache DIR]

``--cache`` keeps each folder's results (``CACHE/<folder name>.json``) for the next run; delete
them after changing the model or segmentation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.assemble import FLAG_LOW_CONFIDENCE
from pipeline.calibration import ece
from pipeline.config import RunSettings
from pipeline.run import load_predictor, process_batch
from pipeline.score import _cells, field_pairs, field_value, load_truth, match_cells
from pipeline.writer import form_to_dict

L2 = 0.1


def field_rows(pages: list[dict], truth: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, 5) float64 and outcomes (N,) float64 (1 = value exactly right) of the found fields."""
    preds = {(Path(p["source"]).name, p["page"]): p for p in pages}
    xs, ys = [], []
    for t in truth:
        p = preds.get((Path(t["source"]).name, t["page"]))
        if p is None or p.get("error"):
            continue
        m = match_cells(p, t)
        for ti, pi in field_pairs(m, _cells(t), _cells(p)).items():
            f = p["fields"][pi]
            confs = [min(1.0, max(float(d["confidence"]), 1e-6)) for d in f["digits"]]
            n_blank = sum(d["digit"] is None for d in f["digits"])
            seg = any(name != FLAG_LOW_CONFIDENCE for name in f["flags"])
            xs.append([sum(math.log(c) for c in confs), len(confs) - n_blank, n_blank, float(seg), 1.0])
            ys.append(float(field_value(f) == field_value(t["fields"][ti])))
    return np.asarray(xs, np.float64).reshape(-1, 5), np.asarray(ys, np.float64)


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 100) -> np.ndarray:
    """L2-penalised logistic regression by Newton's method; returns the (5,) weights."""
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        grad = x.T @ (p - y) + l2 * w
        hess = (x.T * (p * (1 - p))) @ x + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("forms", type=Path, nargs="+", help="folders of scans, each with its truth.json")
    ap.add_argument("--cache", type=Path, default=None, help="folder for each folder's results JSON (reused when present)")
    args = ap.parse_args()
    settings = RunSettings()
    predictor = None
    data = []
    for folder in args.forms:
        cached = args.cache / f"{folder.name}.json" if args.cache else None
        if cached and cached.is_file():
            pages = json.loads(cached.read_text())["pages"]
        else:
            predictor = predictor or load_predictor(settings)
            pages = []
            process_batch([folder], settings, lambda f, pages=pages: pages.append(form_to_dict(f)), predictor=predictor)
            if cached:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_text(json.dumps({"pages": pages}))
        data.append((folder.name, *field_rows(pages, load_truth(folder / "truth.json"))))
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    x = np.concatenate([d[1] for d in data])
    y = np.concatenate([d[2] for d in data])
    w = fit(x, y)
    print(json.dumps({"fields": int(len(y)), "exact": round(float(y.mean()), 4), "weights": [round(float(v), 3) for v in w]}))
    def line(name: str, ys: np.ndarray, prod: np.ndarray, model: np.ndarray) -> str:
        return json.dumps({"left_out": name, "fields": int(len(ys)), "exact": round(float(ys.mean()), 4),
                           "product_mean": round(float(prod.mean()), 4), "product_ece": round(ece(prod, ys > 0), 4),
                           "model_mean": round(float(model.mean()), 4), "model_ece": round(ece(model, ys > 0), 4)})

    outs = []
    for name, xs, ys in data:  # each folder scored by a model fitted without it
        rest = [d for d in data if d[0] != name]
        wo = fit(np.concatenate([d[1] for d in rest]), np.concatenate([d[2] for d in rest]))
        outs.append((ys, np.exp(xs[:, 0]), sig(xs @ wo)))
        print(line(name, *outs[-1]))
    print(line("all (pooled)", *(np.concatenate(parts) for parts in zip(*outs))))


if __name__ == "__main__":
    main()

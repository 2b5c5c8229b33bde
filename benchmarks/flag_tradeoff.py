"""Benchmark: review load against silent errors on forms, every flag rule included.

``digitform evaluate --forms`` tables the confidence threshold alone. On forms most wrong
digits are confident readings of a badly cut mark, caught (if at all) by the segmentation
rules of ``assemble`` (``stray_ink``, ``small_mark``, ``large_mark``, ``crosses_cell``...).
This script reads forms once with ``--min-confidence 0`` (only those rules flag), then for
each threshold flags every digit below it as well and scores the result with
``digitform score``'s metrics, summed over the folders. Prints one JSON line per threshold. Reproduce:

    digitform synth DIR --count 20 --seed 100
    python benchmarks/flag_tradeoff.py DIR [DIR...] [--model CKPT]

Figures per threshold: flag_rate (digits flagged over digits read), errors_unflagged and
spurious_unflagged (misread written digits, and digits read where none is written, left
unflagged), unflagged_wrong_per_1000 (both, per 1,000 digits read), review_rate.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from pipeline.config import RunSettings
from pipeline.run import load_predictor, process_batch
from pipeline.score import load_truth, score_pages
from pipeline.writer import form_to_dict

THRESHOLDS = (0.0, 0.5, 0.8, 0.9, 0.922, 0.95, 0.98, 0.99, 0.995, 0.999)


def reflag(pages: list[dict], threshold: float) -> list[dict]:
    """Pages (JSON shape) with every read digit below ``threshold`` flagged as well."""
    out = copy.deepcopy(pages)
    for p in out:
        for f in p["fields"]:
            for d in f["digits"]:
                if d["digit"] is not None and d["confidence"] < threshold:
                    d["flagged"] = True
            f["flagged"] = any(d["flagged"] for d in f["digits"]) or bool(f["flags"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("forms", type=Path, nargs="+", help="folders of scans, each with its truth.json (digitform synth)")
    ap.add_argument("--model", type=Path, default=None, help="checkpoint [default: the shipped weights]")
    args = ap.parse_args()
    settings = RunSettings(min_confidence=0.0, model=args.model)
    predictor = load_predictor(settings)  # once for all folders
    sets = []
    for folder in args.forms:
        pages: list[dict] = []
        process_batch([folder], settings, lambda f, pages=pages: pages.append(form_to_dict(f)), predictor=predictor)
        sets.append((pages, load_truth(folder / "truth.json")))
    for t in sorted(set(THRESHOLDS) | {predictor.threshold}):  # the model's stored threshold too
        tot = {"predicted_digits": 0, "flagged": 0, "errors_unflagged": 0, "spurious_unflagged": 0, "reviewed": 0, "cells": 0}
        for pages, truth in sets:
            s = score_pages(reflag(pages, t), truth)
            for k in ("predicted_digits", "flagged", "errors_unflagged", "spurious_unflagged"):
                tot[k] += s[k]
            tot["reviewed"] += s["flagged"] + s["flagged_blanks"]
            tot["cells"] += s["cells_predicted"]
        read = max(1, tot["predicted_digits"])
        print(json.dumps({
            "threshold": t, "digits_read": tot["predicted_digits"], "flag_rate": round(tot["flagged"] / read, 4),
            "errors_unflagged": tot["errors_unflagged"], "spurious_unflagged": tot["spurious_unflagged"],
            "unflagged_wrong_per_1000": round(1000 * (tot["errors_unflagged"] + tot["spurious_unflagged"]) / read, 2),
            "review_rate": round(tot["reviewed"] / max(1, tot["cells"]), 4),
        }))


if __name__ == "__main__":
    main()

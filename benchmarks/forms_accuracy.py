"""Benchmark: end-to-end reading of synthetic scanned forms the project has never seen.

Generates forms with ``digitform synth`` (MNIST **test** digits; a seed not used during
development), runs ``process`` on them and scores against the truth file. Prints one JSON
object per style. Reproduce:

    python benchmarks/forms_accuracy.py --data ../shared/data/mnist --count 30 --seed 7000

Figures: cell_recall (printed digit cells found, IoU >= 0.5), digit_accuracy (written
digits read right, over all written cells), digit_accuracy_found (over cells found),
flag_rate, caught (errors flagged), unflagged_errors_per_1000 (written digits misread and
not flagged, per 1,000 digits read), review_rate (flagged cells, blank verdicts included,
over cells reported), spurious_digits and spurious_unflagged_per_1000 (digits read where none
is written: on a blank cell or a false cell).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pipeline.config import RunSettings
from pipeline.run import process_batch
from pipeline.score import load_truth, score_pages
from pipeline.synth import generate_forms
from pipeline.writer import form_to_dict


def run(style: str, count: int, seed: int, data: Path, work: Path, settings: RunSettings) -> dict:
    out = work / style
    truth = generate_forms(out, count, seed, data, style=style)
    pages: list[dict] = []
    t0 = time.perf_counter()
    summary = process_batch([out], settings, lambda f: pages.append(form_to_dict(f)))
    dt = time.perf_counter() - t0
    s = score_pages(pages, load_truth(truth))
    errors = s["errors_flagged"] + s["errors_unflagged"]
    return {
        "style": style, "seed": seed, "forms": count, "pages": summary.pages, "seconds": round(dt, 1),
        "cells_truth": s["cells_truth"], "cell_recall": round(s["cell_recall"], 4), "cell_precision": round(s["cell_precision"], 4),
        "digits_truth": s["digits_truth"], "digit_accuracy": round(s["digit_accuracy"], 4),
        "digit_accuracy_found": round(s["digit_accuracy_found"], 4),
        "digits_degraded": s["digits_truth"] - s["digits_legible"], "digit_accuracy_legible": round(s["digit_accuracy_legible"], 4),
        "blank_accuracy": round(s["blank_accuracy"], 4),
        "errors_on_found": errors, "flag_rate": round(s["flag_rate"], 4), "caught": round(s["caught"], 4),
        "unflagged_errors_per_1000": round(1000 * s["errors_unflagged"] / max(1, s["predicted_digits"]), 2),
        "unflagged_errors_legible": s["errors_unflagged_legible"],
        "review_rate": round(s["review_rate"], 4),
        "spurious_digits": s["spurious_digits"],
        "spurious_unflagged_per_1000": round(1000 * s["spurious_unflagged"] / max(1, s["predicted_digits"]), 2),
        "field_accuracy": round(s["field_accuracy"], 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/mnist"))
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--styles", default="sample,holdout")
    ap.add_argument("--min-confidence", type=float, default=None)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="write the forms here instead of a temp folder")
    args = ap.parse_args()
    settings = RunSettings(min_confidence=args.min_confidence, model=args.model)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for i, style in enumerate(args.styles.split(",")):
            print(json.dumps(run(style, args.count, args.seed + i, args.data, work, settings)))


if __name__ == "__main__":
    main()

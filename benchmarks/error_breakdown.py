"""Benchmark: where the written digits of synthetic forms are lost, by cause.

Reads a ``digitform process`` JSON/JSONL output and the ``truth.json`` that ``digitform
synth`` wrote, matches cells as ``digitform score`` does (IoU >= 0.5), and sorts every
written digit that did not come out right into one cause, first that applies:

* ``not_found``: its cell was not found;
* ``degraded``: the scan kept under ``--legible`` (0.5) of its stroke core (truth
  ``ink_kept``: a faint pen under a 1-bit threshold, heavy blur);
* ``straying``: at least ``--stray`` (0.1) of its stroke core was drawn outside its cell
  (truth ``ink_outside``: the digit crosses the ruling, ``SynthStyle.p_stray``);
* ``other``: found, legible and inside its cell, and still read wrong (a bad cut, a box
  line kept or a stroke lost, heavy or blurred strokes, an ambiguous MNIST digit).

For each cause it prints how many digits it holds, how many of them were read right, and how
many of the wrong ones were left unflagged. Reproduce, for example:

    python benchmarks/forms_accuracy.py --data ../shared/data/mnist --count 60 --seed 19000 --keep runs/h19000
    digitform process runs/h19000/holdout -o runs/h19000/holdout.json
    python benchmarks/error_breakdown.py runs/h19000/holdout.json runs/h19000/holdout/truth.json

Truth files written before ``ink_kept`` / ``ink_outside`` existed count every digit as
legible and inside its cell.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.score import LEGIBLE_INK, LOSS_CAUSES, STRAYING, cell_digit, load_truth, loss_cause, match_cells, page_cells, page_key
from pipeline.writer import read_results


def breakdown(pred_pages: list[dict], truth_pages: list[dict], legible: float = LEGIBLE_INK, stray: float = STRAYING) -> dict:
    """Written digits by cause of loss (see the module docstring).

    Returns:
        {"digits": n written, "right": n read right, "causes": {cause: {"digits", "right",
        "wrong", "wrong_unflagged"}}}; a digit read right counts under the first cause that
        applies to it too (a degraded digit read right anyway), except ``not_found``.
    """
    preds = {page_key(p): p for p in pred_pages}
    out = {c: {"digits": 0, "right": 0, "wrong": 0, "wrong_unflagged": 0} for c in LOSS_CAUSES}
    total = right = 0
    for t in truth_pages:
        pred = preds.get(page_key(t))
        m = match_cells(pred, t)
        pcells = [d for _, d in page_cells(pred or {})]
        for ti, (_, d) in enumerate(page_cells(t)):
            want = cell_digit(d)
            if want is None:
                continue
            total += 1
            c = out[loss_cause(d, ti in m, legible, stray)]
            c["digits"] += 1
            if ti in m and cell_digit(pcells[m[ti]]) == want:
                c["right"] += 1
                right += 1
            else:
                c["wrong"] += 1
                c["wrong_unflagged"] += int(ti in m and not pcells[m[ti]].get("flagged"))
    return {"digits": total, "right": right, "causes": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="output of digitform process (.json or .jsonl)")
    ap.add_argument("truth", type=Path, help="truth.json written by digitform synth")
    ap.add_argument("--legible", type=float, default=LEGIBLE_INK, help="ink_kept below this: degraded past reading")
    ap.add_argument("--stray", type=float, default=STRAYING, help="ink_outside at or above this: a digit straying out of its cell")
    args = ap.parse_args()
    print(json.dumps(breakdown(read_results(args.results), load_truth(args.truth), args.legible, args.stray)))


if __name__ == "__main__":
    main()

"""benchmarks/error_breakdown.py: every written digit lands under the first cause that applies."""

from __future__ import annotations

import copy

from benchmark_scripts import load_script, one_field_page

eb = load_script("error_breakdown")
_page = one_field_page


def test_causes_are_exclusive_and_in_order() -> None:
    truth = [_page([
        {"digit": "1"},  # read right, inside
        {"digit": "2", "ink_kept": 0.2, "ink_outside": 0.3},  # degraded (first cause that applies), misread, unflagged
        {"digit": "3", "ink_outside": 0.3},  # straying, misread, flagged
        {"digit": "4", "ink_outside": 0.05},  # inside (under the 0.1 limit), misread, unflagged
        {"digit": "5"},  # its cell is not found
        {"digit": None},  # blank: not counted
    ])]
    pred = copy.deepcopy(truth)
    pred[0]["source"] = "out/a.png"
    cells = pred[0]["fields"][0]["digits"]
    for c in cells:
        c["flagged"] = False
    cells[1]["digit"] = "7"
    cells[2].update(digit="8", flagged=True)
    cells[3]["digit"] = "9"
    cells[4]["box"] = [900.0, 900.0, 40.0, 45.0]
    r = eb.breakdown(pred, truth)
    c = r["causes"]
    assert (r["digits"], r["right"]) == (5, 1)
    assert c["not_found"] == {"digits": 1, "right": 0, "wrong": 1, "wrong_unflagged": 0}
    assert c["degraded"] == {"digits": 1, "right": 0, "wrong": 1, "wrong_unflagged": 1}
    assert c["straying"] == {"digits": 1, "right": 0, "wrong": 1, "wrong_unflagged": 0}
    assert c["other"] == {"digits": 2, "right": 1, "wrong": 1, "wrong_unflagged": 1}
    assert eb.breakdown(pred, truth, legible=0.1)["causes"]["degraded"]["digits"] == 0  # 0.2 kept is legible at 0.1

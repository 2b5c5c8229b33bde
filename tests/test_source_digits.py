"""benchmarks/source_digits.py: form readings set beside the model's reading of each digit's MNIST source."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from benchmark_scripts import load_script, one_field_page

sd = load_script("source_digits")
_page = one_field_page


def test_rows_pair_each_written_digit_with_its_source_image() -> None:
    truth = [_page([{"digit": "1"}, {"digit": None}, {"digit": "2"}, {"digit": "3", "ink_outside": 0.4}, {"digit": "4"}])]
    doc = {"generator": {"pages": [{"mnist_indices": [5, 6, 7, 8]}]}, "pages": truth}
    pred = copy.deepcopy(truth)
    cells = pred[0]["fields"][0]["digits"]
    for c in cells:
        c["flagged"] = False
    cells[2].update(digit="7")  # misread; its source (index 6) is sure
    cells[4].update(flagged=True)  # right but flagged; its source (index 8) is not sure
    probs = np.full((10, 10), 0.0)
    probs[5, 1] = 0.999
    probs[6, 2] = 0.995
    probs[7, 3] = 0.999
    probs[8, 4] = 0.6
    rows = sd.source_rows(pred, doc, truth, probs)
    assert [r["source_p"] for r in rows] == [0.999, 0.995, 0.6]  # the straying "3" is left out
    assert sd.summary(rows) == {"inside": 3, "wrong": 1, "wrong_source_sure": 1, "flagged_right": 1, "flagged_right_source_sure": 0}
    doc["generator"]["pages"][0]["mnist_indices"] = [5, 6]
    with pytest.raises(ValueError, match="MNIST indices"):
        sd.source_rows(pred, doc, truth, probs)

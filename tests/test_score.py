"""pipeline.score: cell matching by IoU, digit/blank/flag/field counts, truth loading."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.score import format_report, load_truth, score_pages


def _field(i: int, y: float, digits: list[str | None]) -> dict:
    cells = [{"box": [100.0 + 50 * k, y, 40.0, 45.0], "digit": d, "blank": d is None} for k, d in enumerate(digits)]
    return {"name": f"field_{i}", "box": [100.0, y, 50.0 * len(digits) - 10, 45.0],
            "value": "".join(d for d in digits if d), "digits": cells}


def _truth() -> list[dict]:
    return [
        {"source": "/data/forms/a.png", "page": 1, "width": 1000, "height": 1400, "rotation": 0, "skew": 0.0,
         "fields": [_field(1, 100, ["1", "2", "3", None]), _field(2, 300, ["4", "5", "6", "7"])]},
        {"source": "/data/forms/b.tif", "page": 2, "width": 1000, "height": 1400, "rotation": 180, "skew": 0.5,
         "fields": [_field(1, 200, ["8", "9", None])]},
    ]


def _pred() -> list[dict]:
    pred = copy.deepcopy(_truth())
    for p in pred:
        p["source"] = "out/" + Path(p["source"]).name  # matched by file name and page only
        for f in p["fields"]:
            for d in f["digits"]:
                d["flagged"] = False
    return pred


def _set(pred: list[dict], page: int, field: int, pos: int, digit: str | None, flagged: bool = False) -> None:
    f = pred[page]["fields"][field]
    f["digits"][pos].update(digit=digit, blank=digit is None, flagged=flagged)
    f["value"] = "".join(d["digit"] for d in f["digits"] if d["digit"])


def test_perfect_prediction_scores_one() -> None:
    s = score_pages(_pred(), _truth())
    assert (s["cells_truth"], s["digits_truth"], s["blank_truth"], s["fields_truth"]) == (11, 9, 2, 3)
    for k in ("cell_recall", "cell_precision", "digit_accuracy", "digit_accuracy_found", "caught", "field_accuracy"):
        assert s[k] == 1.0, k
    assert s["blank_correct"] == 2 and s["fields_exact"] == 3 and s["pages_missing"] == 0
    assert s["errors_unflagged"] == s["errors_flagged"] == s["flagged"] == 0 and s["flag_rate"] == 0.0


def test_one_wrong_digit_costs_exactly_one_over_n() -> None:
    pred = _pred()
    _set(pred, 0, 1, 2, "0")
    s = score_pages(pred, _truth())
    assert s["digit_accuracy"] == pytest.approx(1 - 1 / 9)
    assert s["errors_unflagged"] == 1 and s["errors_flagged"] == 0 and s["caught"] == 0.0
    assert s["fields_exact"] == 2 and s["cell_recall"] == 1.0
    assert s["per_page"][0]["mistakes"] == [
        {"field": 1, "position": 2, "truth": "6", "pred": "0", "flagged": False, "found": True}]


def test_flagged_error_is_caught() -> None:
    pred = _pred()
    _set(pred, 0, 0, 0, "7", flagged=True)
    _set(pred, 1, 0, 1, "4", flagged=False)
    s = score_pages(pred, _truth())
    assert (s["errors_flagged"], s["errors_unflagged"], s["flagged"]) == (1, 1, 1)
    assert s["caught"] == 0.5 and s["flag_rate"] == pytest.approx(1 / 9)


def test_flagged_blank_verdicts_count_in_the_review_rate_not_the_flag_rate() -> None:
    pred = _pred()
    _set(pred, 0, 0, 3, None, flagged=True)  # a true blank, flagged
    _set(pred, 1, 0, 0, None, flagged=True)  # an "8" read as blank, flagged
    s = score_pages(pred, _truth())
    assert s["flagged_blanks"] == 2 and s["flagged"] == 0 and s["flag_rate"] == 0.0
    assert s["review_rate"] == pytest.approx(2 / 11)
    assert "blank verdicts flagged 2" in format_report(s)


def test_boxes_shifted_below_iou_are_not_found() -> None:
    pred = _pred()
    for d in pred[0]["fields"][1]["digits"]:
        d["box"][0] += 25.0  # IoU = 15/65 < 0.5
    s = score_pages(pred, _truth())
    assert s["cells_found"] == 7 and s["cell_recall"] == pytest.approx(7 / 11)
    assert s["cell_precision"] == pytest.approx(7 / 11)
    assert s["digit_accuracy"] == pytest.approx(5 / 9) and s["digit_accuracy_found"] == 1.0
    assert s["fields_exact"] == 2
    assert score_pages(pred, _truth(), iou=0.2)["cell_recall"] == 1.0


def test_digit_on_blank_and_int_digits() -> None:
    pred = _pred()
    _set(pred, 0, 0, 3, "5")
    for d in pred[1]["fields"][0]["digits"]:
        if d["digit"] is not None:
            d["digit"] = int(d["digit"])
    s = score_pages(pred, _truth())
    assert s["false_digits_on_blank"] == 1 and s["blank_correct"] == 1
    assert s["digit_accuracy"] == 1.0 and s["fields_exact"] == 2


def test_missing_page_counts_all_its_cells_as_missed() -> None:
    s = score_pages(_pred()[:1], _truth())
    assert s["pages_missing"] == 1 and s["cells_found"] == 8
    assert s["digit_accuracy"] == pytest.approx(7 / 9)
    assert "MISSING" in format_report(s) and "recall" in format_report(s)


def test_load_truth_resolves_sources(tmp_path: Path) -> None:
    doc = {"schema_version": 1, "pages": [{"source": "x/a.png", "page": 1, "fields": []}]}
    (tmp_path / "truth.json").write_text(json.dumps(doc))
    pages = load_truth(tmp_path / "truth.json")
    assert pages[0]["source"] == str((tmp_path / "x/a.png").resolve())
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read truth file"):
        load_truth(tmp_path / "bad.json")
    (tmp_path / "nopages.json").write_text("{}")
    with pytest.raises(InputError, match="no 'pages' list"):
        load_truth(tmp_path / "nopages.json")


def test_digits_read_where_none_is_written_are_counted_as_spurious() -> None:
    pred = _pred()
    _set(pred, 0, 0, 3, "5")  # a digit read on a blank cell, not flagged
    extra = {"box": [900.0, 900.0, 40.0, 45.0], "digit": "1", "blank": False, "flagged": True}
    pred[1]["fields"][0]["digits"].append(extra)  # a false cell (a checkbox), flagged
    s = score_pages(pred, _truth())
    assert s["spurious_digits"] == 2 and s["spurious_unflagged"] == 1
    assert s["errors_unflagged"] == 0 and s["false_digits_on_blank"] == 1
    assert "spurious digits read where none is written 2 (1 unflagged)" in format_report(s)


def _set_field(pred: list[dict], page: int, field: int, confidence: float, flagged: bool = False) -> None:
    pred[page]["fields"][field].update(confidence=confidence, flagged=flagged)


def test_field_confidence_is_scored_against_whole_field_exactness() -> None:
    pred = _pred()
    _set_field(pred, 0, 0, 0.9)
    _set_field(pred, 0, 1, 0.9)
    _set_field(pred, 1, 0, 0.6, flagged=True)
    _set(pred, 0, 1, 2, "0")  # field 2 of page 1 now reads wrong, unflagged
    s = score_pages(pred, _truth())
    assert s["fields_exact"] == 2 and s["fields_flagged"] == 1 and s["fields_wrong_unflagged"] == 1
    assert s["field_confidence"] == pytest.approx((0.9 + 0.9 + 0.6) / 3)
    assert s["field_accuracy_found"] == pytest.approx(2 / 3)
    # bins: {0.9, 0.9} half right -> |0.5 - 0.9| * 2/3; {0.6} right -> |1 - 0.6| * 1/3
    assert s["field_ece"] == pytest.approx(0.4 * 2 / 3 + 0.4 / 3)
    assert s["field_ece_unflagged"] == pytest.approx(0.4)  # only the two 0.9 fields
    assert "wrong and unflagged 1" in format_report(s)


def test_field_calibration_defaults_without_confidences() -> None:
    s = score_pages(_pred(), _truth())  # truth-shaped pages carry no field confidence
    assert s["field_ece"] == 0.0 and s["field_confidence"] == 1.0 and s["fields_wrong_unflagged"] == 0


def test_digits_degraded_past_reading_are_counted_apart() -> None:
    truth = _truth()
    truth[0]["fields"][1]["digits"][2]["ink_kept"] = 0.2  # the "6": the scan kept a fifth of its strokes
    truth[0]["fields"][0]["digits"][0]["ink_kept"] = 0.9  # the "1": legible
    pred = _pred()
    _set(pred, 0, 1, 2, "0")  # the degraded "6" misread, unflagged
    _set(pred, 0, 0, 0, "7", flagged=True)  # a legible "1" misread, flagged
    s = score_pages(pred, truth)
    assert s["digits_legible"] == 8 and s["digits_correct_legible"] == 7
    assert s["digit_accuracy_legible"] == pytest.approx(7 / 8) and s["digit_accuracy"] == pytest.approx(7 / 9)
    assert s["illegible_wrong_unflagged"] == 1 and s["errors_unflagged_legible"] == 0
    assert "1 degraded past reading" in format_report(s)
    # a truth file without ink_kept (hand-made, or written before it existed) counts every digit as legible
    s = score_pages(pred, _truth())
    assert s["digits_legible"] == s["digits_truth"] == 9 and s["digit_accuracy_legible"] == s["digit_accuracy"]
    assert s["errors_unflagged_legible"] == 1 and s["illegible_wrong_unflagged"] == 0


def test_flag_reasons_count_right_and_wrong_digits_per_reason() -> None:
    pred = _pred()
    _set(pred, 0, 0, 0, "7", flagged=True)  # a misread, flagged for two reasons
    pred[0]["fields"][0]["digits"][0]["flags"] = ["low_confidence", "reread"]
    _set(pred, 0, 1, 1, "5", flagged=True)  # right, flagged by one reason alone
    pred[0]["fields"][1]["digits"][1]["flags"] = ["reread"]
    _set(pred, 0, 0, 3, "5", flagged=True)  # a digit read on a blank cell: wrong
    pred[0]["fields"][0]["digits"][3]["flags"] = ["small_mark"]
    pred[1]["fields"][0]["digits"][2].update(flagged=True, flags=["ink_on_line"])  # a blank verdict: not a digit read
    s = score_pages(pred, _truth())
    assert s["flag_reasons"] == {
        "low_confidence": {"right": 0, "wrong": 1, "right_alone": 0, "wrong_alone": 0},
        "reread": {"right": 1, "wrong": 1, "right_alone": 1, "wrong_alone": 0},
        "small_mark": {"right": 0, "wrong": 1, "right_alone": 0, "wrong_alone": 1},
    }
    assert "  reread                1 / 1      alone      1 / 0" in format_report(s)
    assert score_pages(_pred(), _truth())["flag_reasons"] == {}

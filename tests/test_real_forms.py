"""Regression on real scans (../shared/real_forms/markus): exam cover pages from the MarkUs
project's test fixtures, read with the shipped model; truth read off the images by eye."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.classify.checkpoint import load_checkpoint
from pipeline.config import RunSettings
from pipeline.run import process_batch
from pipeline.types import FieldResult, FormResult, PageStatus

REAL = Path(__file__).resolve().parents[2] / "shared/real_forms/markus"
FILES = ("exam_cover_blank.png", "exam_cover_filled.png", "student_number_row.jpg")

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(
        not all((REAL / f).is_file() for f in FILES),
        reason=f"real scans not found in {REAL} (they live outside the repository, in ../shared/real_forms/markus)",
    ),
]


@pytest.fixture(scope="module")
def results() -> dict[str, FormResult]:
    out: list[FormResult] = []
    process_batch([REAL / f for f in FILES], RunSettings(device="cpu"), out.append, model=load_checkpoint(None, "cpu"))
    assert [f.source.name for f in out] == list(FILES)
    return {f.source.name: f for f in out}


def cells(field: FieldResult) -> str:
    """The field cell by cell: the digit read, or '_' for a blank cell."""
    return "".join("_" if d.blank else str(d.prediction.digit) for d in field.digits)


def describe(form: FormResult) -> list[tuple[int, str]]:
    return [(len(f.digits), cells(f)) for f in form.fields]


def assert_read_upright(form: FormResult, width: int, height: int) -> None:
    assert form.status in (PageStatus.OK, PageStatus.NEEDS_REVIEW), form.error
    assert (form.width, form.height) == (width, height)
    assert form.rotation == 0
    for f in form.fields:
        xs = [d.cell.box[0] for d in f.digits]
        assert xs == sorted(xs), f"{f.name}: cells not left to right"
        fx, fy, fw, fh = f.box
        for d in f.digits:
            x, y, w, h = d.cell.box
            assert fx - 1 <= x and x + w <= fx + fw + 1 and fy - 1 <= y and y + h <= fy + fh + 1


def test_filled_exam_cover(results):
    form = results["exam_cover_filled.png"]
    assert_read_upright(form, 3400, 4400)
    # Name: 24 empty cells; Student Number: 10 cells written 0..9. The marks table and the
    # QR code are not fields.
    assert describe(form) == [(24, "_" * 24), (10, "0123456789")]
    name, number = form.fields
    assert name.value == ""
    assert number.value == "0123456789"
    assert name.box[1] < number.box[1]


def test_blank_exam_cover(results):
    form = results["exam_cover_blank.png"]
    assert_read_upright(form, 3400, 4400)
    assert describe(form) == [(24, "_" * 24), (10, "_" * 10)]
    assert all(f.value == "" for f in form.fields)
    assert all(d.prediction.digit is None for f in form.fields for d in f.digits)


def test_student_number_row(results):
    form = results["student_number_row.jpg"]
    assert_read_upright(form, 1686, 186)
    assert describe(form) == [(16, "0001250981" + "_" * 6)]
    assert form.fields[0].value == "0001250981"

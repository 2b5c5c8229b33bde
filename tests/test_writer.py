"""pipeline.writer: CSV / JSON / JSONL output contract, round trips, schema, crash safety."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError, OutputError
from pipeline.types import DigitBox, DigitCrop, DigitPrediction, DigitResult, FieldResult, FormResult, PageStatus
from pipeline.writer import (
    CSV_COLUMNS,
    SCHEMA_VERSION,
    form_to_dict,
    load_schema,
    open_writer,
    partial_path,
    read_results,
    write_results,
)

MODEL = {"name": "digitnet", "arch": "test", "file": None, "temperature": 1.5, "threshold": 0.9}

# --------------------------------------------------------------------------- builders


def make_digit(
    digit: int | None = 7,
    box: tuple[float, float, float, float] = (10.0, 20.0, 8.0, 12.0),
    confidence: float = 0.99,
    flagged: bool = False,
    alternatives: tuple[tuple[str, float], ...] = (("1", 0.005),),
    flags: tuple[str, ...] = (),
) -> DigitResult:
    cell = DigitBox(field_index=0, position=0, box=box, aligned_box=(10, 20, 8, 12))
    crop = DigitCrop(cell=cell, pixels=np.zeros((28, 28), np.float32), blank=digit is None, ink=0.0 if digit is None else 0.2)
    pred = DigitPrediction(digit=digit, confidence=confidence, margin=0.5, alternatives=alternatives)
    return DigitResult(cell=cell, crop=crop, prediction=pred, flagged=flagged, flags=flags)


def make_field(
    name: str = "amount",
    value: str = "007",
    digits: tuple[DigitResult, ...] | None = None,
    flags: tuple[str, ...] = (),
    confidence: float = 0.97,
) -> FieldResult:
    if digits is None:
        digits = tuple(make_digit(int(c)) for c in value)
    return FieldResult(
        index=0,
        name=name,
        box=(5.0, 15.0, 100.0, 20.0),
        value=value,
        confidence=confidence,
        flagged=bool(flags),
        flags=flags,
        digits=digits,
    )


def make_form(source: str = "scans/a.png", page: int = 1, fields: tuple[FieldResult, ...] | None = None) -> FormResult:
    fields = (make_field(),) if fields is None else fields
    status = PageStatus.NEEDS_REVIEW if any(f.flagged for f in fields) else PageStatus.OK
    return FormResult(source=Path(source), page=page, status=status, error=None, width=2480, height=3508, fields=fields)


# --------------------------------------------------------------------------- strategies

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
_prob = st.floats(0.0, 1.0, allow_nan=False)
_coord = st.floats(-50.0, 10_000.0, allow_nan=False)
_box = st.tuples(_coord, _coord, _coord, _coord)
_flag = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)


@st.composite
def digits(draw: st.DrawFn) -> DigitResult:
    d = draw(st.none() | st.integers(0, 9))
    alts = draw(st.lists(st.tuples(st.sampled_from("0123456789"), _prob), max_size=2))
    return make_digit(d, draw(_box), draw(_prob), draw(st.booleans()), tuple(alts))


@st.composite
def fields(draw: st.DrawFn) -> FieldResult:
    ds = tuple(draw(st.lists(digits(), max_size=4)))
    value = "".join(str(d.prediction.digit) for d in ds if d.prediction.digit is not None)
    value = draw(st.sampled_from([value, "0" + value, "00"]))  # leading zeros on purpose
    return FieldResult(
        index=0,
        name=draw(_text),
        box=draw(_box),
        value=value,
        confidence=draw(_prob),
        flagged=draw(st.booleans()),
        flags=tuple(draw(st.lists(_flag, max_size=3))),
        digits=ds,
    )


@st.composite
def forms(draw: st.DrawFn) -> FormResult:
    source = Path(draw(_text) or "x") / "scan 01,\"q\".tif"
    page = draw(st.integers(1, 500))
    status = draw(st.sampled_from(list(PageStatus)))
    if status is PageStatus.FAILED:
        error = draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40))
        return FormResult.failed(source, page, error)
    return FormResult(
        source=source,
        page=page,
        status=status,
        error=None,
        width=draw(st.integers(1, 20_000)),
        height=draw(st.integers(1, 20_000)),
        fields=tuple(draw(st.lists(fields(), max_size=3))),
        rotation=draw(st.sampled_from([0, 90, 180, 270])),
        skew=draw(st.floats(-10, 10, allow_nan=False)),
    )


def expected_csv_rows(page: dict[str, Any]) -> list[dict[str, Any]]:
    """What ``read_results`` should give for one page's CSV rows, derived from its JSON object."""
    base = {"source": page["source"], "page": page["page"], "status": page["status"], "error": page["error"]}
    if not page["fields"]:
        return [{**base, "field": "", "value": "", "confidence": None, "flagged": None, "flags": []}]
    return [
        {**base, "field": f["name"], "value": f["value"], "confidence": f["confidence"], "flagged": f["flagged"], "flags": f["flags"]}
        for f in page["fields"]
    ]


def validate(doc: Any, definition: str | None = None) -> None:
    schema = load_schema()
    if definition is not None:
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema).validate(doc)


# --------------------------------------------------------------------------- round trips


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(forms(), max_size=4))
def test_round_trip_all_formats(batch: list[FormResult]) -> None:
    expected = [form_to_dict(f) for f in batch]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name in ("out.json", "out.jsonl", "out.csv"):
            assert write_results(batch, d / name, MODEL) == len(batch)

        doc = json.loads((d / "out.json").read_text(encoding="utf-8"))
        validate(doc)
        assert doc["schema_version"] == SCHEMA_VERSION and doc["model"] == MODEL
        assert read_results(d / "out.json") == expected
        assert not partial_path(d / "out.json").exists()

        lines = read_results(d / "out.jsonl")
        for line in lines:
            validate(line, "page")
        assert [{k: v for k, v in ln.items() if k != "schema_version"} for ln in lines] == expected
        assert all(next(iter(ln)) == "schema_version" for ln in lines)

        rows = read_results(d / "out.csv")
        assert rows == [r for page in expected for r in expected_csv_rows(page)]


def test_form_to_dict_shape_and_rounding() -> None:
    digit = make_digit(0, box=(10.04, 20.36, 8.0, 12.5), confidence=0.123456, alternatives=(("6", 0.0123456),))
    blank = make_digit(None, box=(20, 20, 8, 12), confidence=0.9, flagged=True, alternatives=(), flags=("low_confidence",))
    form = make_form(fields=(make_field(value="0", digits=(digit, blank), flags=("low_confidence",)),))
    d = form_to_dict(form)
    assert list(d) == ["source", "page", "status", "error", "width", "height", "fields", "rotation", "skew"]
    assert d["source"] == str(Path("scans/a.png")) and d["page"] == 1 and d["status"] == "needs_review"
    (f,) = d["fields"]
    assert list(f) == ["name", "box", "value", "confidence", "flagged", "flags", "digits"]
    assert f["box"] == [5, 15, 100, 20] and all(type(v) is int for v in f["box"])
    assert f["flags"] == ["low_confidence"] and f["flagged"] is True
    d0, d1 = f["digits"]
    assert list(d0) == ["box", "digit", "blank", "confidence", "flagged", "flags", "alternatives"]
    assert d0["flags"] == [] and d1["flags"] == ["low_confidence"]
    assert d0["box"] == [10, 20.4, 8, 12.5]
    assert d0["digit"] == "0" and d0["blank"] is False and d0["confidence"] == 0.1235
    assert d0["alternatives"] == [["6", 0.0123]]
    assert d1["digit"] is None and d1["blank"] is True and d1["flagged"] is True and d1["alternatives"] == []
    validate(d, "page")


# --------------------------------------------------------------------------- CSV specifics


def test_csv_leading_zeros_and_failed_and_empty_pages(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    failed = FormResult.failed(Path("scans/bad.png"), 1, "scans/bad.png: empty file (0 bytes)")
    empty = make_form(source="scans/blank.png", fields=())
    good = make_form(fields=(make_field("zip", "00123", flags=("low_confidence", "length")), make_field("n", "")))
    write_results([good, failed, empty], out, MODEL)

    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert ",00123," in text

    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(raw.columns) == list(CSV_COLUMNS)
    assert raw["value"].tolist() == ["00123", "", "", ""]

    rows = read_results(out)
    assert [r["field"] for r in rows] == ["zip", "n", "", ""]
    assert rows[0]["flags"] == ["low_confidence", "length"] and rows[0]["flagged"] is True
    assert rows[1]["value"] == "" and rows[1]["flags"] == [] and rows[1]["flagged"] is False
    assert rows[2] == {
        "source": "scans/bad.png",
        "page": 1,
        "field": "",
        "value": "",
        "confidence": None,
        "flagged": None,
        "flags": [],
        "status": "failed",
        "error": "scans/bad.png: empty file (0 bytes)",
    }
    assert rows[3]["status"] == "ok" and rows[3]["error"] is None and rows[3]["source"] == "scans/blank.png"


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl"])
def test_incremental_rows_visible_before_close(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    w = open_writer(out, MODEL)
    w.add(make_form(page=1))
    assert len(read_results(out)) == 1  # flushed: a crash now keeps page 1
    w.add(make_form(page=2))
    assert [r["page"] for r in read_results(out)] == [1, 2]
    w.close()
    w.close()  # idempotent
    assert [r["page"] for r in read_results(out)] == [1, 2]


# --------------------------------------------------------------------------- JSON specifics


def test_json_partial_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    side = partial_path(out)
    assert side.name == "res.json.partial.jsonl"
    with open_writer(out, MODEL) as w:
        w.add(make_form(page=1))
        assert not out.exists()  # written atomically at close ...
        assert [p["page"] for p in read_results(side)] == [1]  # ... meanwhile kept here
        w.add(make_form(page=2))
        assert [p["page"] for p in read_results(side)] == [1, 2]
    assert not side.exists()
    assert [p["page"] for p in read_results(out)] == [1, 2]
    assert sorted(os.listdir(tmp_path)) == ["res.json"]  # no temp files left behind


def test_json_crash_keeps_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    w = open_writer(out, MODEL)
    w.add(make_form(page=1))
    del w  # the process dies here: never closed
    assert not out.exists()
    assert [p["page"] for p in read_results(partial_path(out))] == [1]


def test_exception_in_with_block_still_writes(tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    with pytest.raises(KeyboardInterrupt):
        with open_writer(out, MODEL) as w:
            w.add(make_form(page=1))
            raise KeyboardInterrupt
    assert [p["page"] for p in read_results(out)] == [1]


def test_json_empty_batch(tmp_path: Path) -> None:
    out = tmp_path / "none.json"
    assert write_results([], out, MODEL) == 0
    doc = json.loads(out.read_text())
    assert doc == {"schema_version": 1, "model": MODEL, "pages": []}
    validate(doc)


# --------------------------------------------------------------------------- schema


def test_schema_is_valid_and_strict() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    page = form_to_dict(make_form())
    validate(page, "page")

    bad_digit = json.loads(json.dumps(page))
    bad_digit["fields"][0]["digits"][0]["extra"] = 1
    with pytest.raises(jsonschema.ValidationError, match="extra"):
        validate(bad_digit, "page")

    bad_field = json.loads(json.dumps(page))
    del bad_field["fields"][0]["confidence"]
    with pytest.raises(jsonschema.ValidationError, match="confidence"):
        validate(bad_field, "page")

    failed = form_to_dict(FormResult.failed(Path("a.png"), 1, "a.png: file not found"))
    validate(failed, "page")
    failed["error"] = None
    with pytest.raises(jsonschema.ValidationError):
        validate(failed, "page")

    without_optional = {k: v for k, v in page.items() if k not in ("rotation", "skew")}
    validate(without_optional, "page")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["out.txt", "out", "out.json.gz", "out.xlsx"])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(OutputError, match="unknown output format"):
        open_writer(tmp_path / name, MODEL)
    assert not (tmp_path / name).exists()


def test_suffix_case_insensitive_and_parent_created(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "RESULTS.CSV"
    write_results([make_form()], out, MODEL)
    assert len(read_results(out)) == 1


def test_output_is_a_directory(tmp_path: Path) -> None:
    out = tmp_path / "taken.json"
    out.mkdir()
    with pytest.raises(OutputError, match="taken.json.*is a directory"):
        open_writer(out, MODEL)


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot write .*file"):
        open_writer(tmp_path / "file" / "out.csv", MODEL)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            open_writer(ro / "out.jsonl", MODEL)
    finally:
        ro.chmod(0o700)


def test_add_after_close(tmp_path: Path) -> None:
    w = open_writer(tmp_path / "o.jsonl", MODEL)
    w.close()
    with pytest.raises(OutputError, match="closed"):
        w.add(make_form())


def test_read_results_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown results format"):
        read_results(tmp_path / "x.txt")
    with pytest.raises(InputError, match="cannot read"):
        read_results(tmp_path / "missing.json")
    (tmp_path / "v2.json").write_text(json.dumps({"schema_version": 2, "model": {}, "pages": []}))
    with pytest.raises(InputError, match="schema_version 2"):
        read_results(tmp_path / "v2.json")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="CSV columns"):
        read_results(tmp_path / "other.csv")

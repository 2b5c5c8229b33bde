"""``FormResult`` -> CSV / JSON / JSONL files (schema version 1), and those files read back.

Output contract (other tools read it; ``schema/results.schema.json`` is the JSON form):

* JSON: ``{"schema_version": 1, "model": {...}, "pages": [page, ...]}``.
* JSONL: one page object per line, each starting with ``"schema_version": 1``.
* CSV: one row per field, columns ``CSV_COLUMNS``; a failed page, or one read with no
  field, gives one row with an empty ``field``, so every page appears.

A page object is ``form_to_dict``'s result. Boxes are ``[x, y, w, h]`` in source pixels
rounded to 0.1 px (ints when integral); confidences are rounded to 4 decimals.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pandas as pd

from .errors import DigitformError, InputError, OutputError
from .types import Box, DigitResult, FieldResult, FormResult

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CSV_COLUMNS = ("source", "page", "field", "value", "confidence", "flagged", "flags", "status", "error")
FLAG_SEPARATOR = ";"  # joins ``flags`` in the CSV; flags are identifiers and never contain it
PARTIAL_SUFFIX = ".partial.jsonl"  # JSON output's crash-safe sidecar: ``out.json.partial.jsonl``
FORMATS = (".csv", ".json", ".jsonl")

_READ_HINT = "pass a .csv, .json or .jsonl file written by 'digitform run'"


# --------------------------------------------------------------------------- page objects


def form_to_dict(form: FormResult) -> dict[str, Any]:
    """One page as the JSON object of the output contract (also one JSONL line, minus
    ``schema_version``).

    Args:
        form: the page's result.

    Returns:
        ``{"source", "page" (1-based), "status", "error", "width", "height" (source px),
        "fields": [...], "rotation" (degrees), "skew" (degrees)}``; only JSON types (lists,
        not tuples), so it compares equal to the object read back from the file.

    >>> from pathlib import Path
    >>> form_to_dict(FormResult.failed(Path("a.png"), 1, "a.png: empty file (0 bytes)"))["status"]
    'failed'
    """
    return {
        "source": str(form.source),
        "page": int(form.page),
        "status": form.status.value,
        "error": form.error,
        "width": int(form.width),
        "height": int(form.height),
        "fields": [_field_to_dict(f) for f in form.fields],
        "rotation": int(form.rotation),
        "skew": round(float(form.skew), 3),
    }


def _field_to_dict(f: FieldResult) -> dict[str, Any]:
    return {
        "name": f.name,
        "box": _box(f.box),
        "value": f.value,
        "confidence": _conf(f.confidence),
        "flagged": bool(f.flagged),
        "flags": [str(x) for x in f.flags],
        "digits": [_digit_to_dict(d) for d in f.digits],
    }


def _digit_to_dict(d: DigitResult) -> dict[str, Any]:
    p = d.prediction
    return {
        "box": _box(d.cell.box),
        "digit": None if p.digit is None else str(p.digit),
        "blank": bool(d.blank),
        "confidence": _conf(p.confidence),
        "flagged": bool(d.flagged),
        "flags": [str(x) for x in d.flags],
        "alternatives": [[str(label), _conf(prob)] for label, prob in p.alternatives],
    }


def _box(box: Box) -> list[float | int]:
    """(x, y, w, h) -> list rounded to 0.1 px, ints where the rounded value is integral."""
    out: list[float | int] = []
    for v in box:
        r = round(float(v), 1)
        out.append(int(r) if r.is_integer() else r)
    return out


def _conf(p: float) -> float:
    return round(float(p), 4)


def _csv_rows(page: dict[str, Any]) -> list[dict[str, str]]:
    """CSV rows of one page object (``form_to_dict`` output)."""
    common = {"source": page["source"], "page": str(page["page"]), "status": page["status"], "error": page["error"] or ""}
    if not page["fields"]:
        return [{**common, "field": "", "value": "", "confidence": "", "flagged": "", "flags": ""}]
    return [
        {
            **common,
            "field": f["name"],
            "value": f["value"],
            "confidence": repr(f["confidence"]),
            "flagged": "true" if f["flagged"] else "false",
            "flags": FLAG_SEPARATOR.join(f["flags"]),
        }
        for f in page["fields"]
    ]


def _dumps(obj: Any) -> str:
    # allow_nan=False: NaN/inf would make the file invalid JSON; it is a bug upstream.
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


# --------------------------------------------------------------------------- writers


class ResultWriter:
    """Writes pages as they come; a context manager. Make one with ``open_writer``.

    CSV and JSONL are written incrementally and flushed after each page, so a crash keeps
    every page added so far. JSON is accumulated and written atomically at ``close``
    (temporary file in the same folder + ``os.replace``); meanwhile each page also goes to
    the sidecar ``<out>.partial.jsonl`` (JSONL, flushed per page), deleted once the JSON is
    in place, so a crash loses nothing there either.

    Leaving the ``with`` block on an exception (e.g. Ctrl-C) still closes the writer: the
    pages added so far are written out.

    Attributes:
        path: the output file.
        pages: number of pages added so far.
    """

    def __init__(self, path: Path, model_info: dict[str, Any]) -> None:
        self.path = path
        self.model_info = dict(model_info)
        self.pages = 0
        self._closed = False

    def add(self, form: FormResult) -> None:
        """Write (or, for JSON, record) one page.

        Raises:
            OutputError: the file cannot be written (disk full, closed writer, ...).
        """
        if self._closed:
            raise OutputError(f"{self.path}: writer is already closed")
        page = form_to_dict(form)
        try:
            self._add(page)
        except OSError as e:
            raise _output_error(self.path, e) from e
        self.pages += 1

    def close(self) -> None:
        """Finish the file; calling it again does nothing.

        Raises:
            OutputError: the file cannot be written.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._close()
        except OSError as e:
            raise _output_error(self.path, e) from e
        log.info("wrote %d page(s) to %s", self.pages, self.path)

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except DigitformError as e:  # the exception already in flight is the one to report
            log.error("%s", e)

    def _add(self, page: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _CsvWriter(ResultWriter):
    def __init__(self, path: Path, model_info: dict[str, Any]) -> None:
        super().__init__(path, model_info)
        self._fh = _open_text(path)
        # CRLF (RFC 4180): the csv module then also quotes a lone "\r" inside a value.
        self._csv = csv.DictWriter(self._fh, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
        try:
            self._csv.writeheader()
            self._fh.flush()
        except OSError as e:
            self._fh.close()
            raise _output_error(path, e) from e

    def _add(self, page: dict[str, Any]) -> None:
        self._csv.writerows(_csv_rows(page))
        self._fh.flush()

    def _close(self) -> None:
        self._fh.close()


class _JsonlWriter(ResultWriter):
    def __init__(self, path: Path, model_info: dict[str, Any]) -> None:
        super().__init__(path, model_info)
        self._fh = _open_text(path)

    def _add(self, page: dict[str, Any]) -> None:
        self._fh.write(_dumps({"schema_version": SCHEMA_VERSION, **page}) + "\n")
        self._fh.flush()

    def _close(self) -> None:
        self._fh.close()


class _JsonWriter(ResultWriter):
    def __init__(self, path: Path, model_info: dict[str, Any]) -> None:
        super().__init__(path, model_info)
        self.partial_path = partial_path(path)
        self._partial = _JsonlWriter(self.partial_path, model_info)
        self._pages: list[dict[str, Any]] = []

    def _add(self, page: dict[str, Any]) -> None:
        self._partial._add(page)
        self._pages.append(page)

    def _close(self) -> None:
        self._partial._close()
        doc = {"schema_version": SCHEMA_VERSION, "model": self.model_info, "pages": self._pages}
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=1) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline="\n") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            self.partial_path.unlink()


def partial_path(out: Path) -> Path:
    """The crash-safe sidecar of a JSON output: ``out.json`` -> ``out.json.partial.jsonl``."""
    return out.with_name(out.name + PARTIAL_SUFFIX)


def open_writer(out: Path, model_info: dict[str, Any]) -> ResultWriter:
    """Open a results file for writing; the format follows the suffix.

    The parent folder is created when missing. An existing file is overwritten.

    Args:
        out: ``.csv``, ``.json`` or ``.jsonl`` path (suffix case-insensitive).
        model_info: the ``model`` block of the JSON output (e.g. ``LoadedModel.describe()``);
            not written to CSV / JSONL.

    Returns:
        A ``ResultWriter``; use it as a context manager or call ``close``.

    Raises:
        OutputError: unknown suffix, or the path cannot be written (a folder, permission
            denied, ...); the message names the path.

    >>> with open_writer(Path("results.csv"), {"name": "digitnet"}) as w:  # doctest: +SKIP
    ...     w.add(form)
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"{out}: unknown output format {suffix or '(no suffix)'!r}; use .csv, .json or .jsonl")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory, not an output file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _output_error(out.parent, e) from e
    if suffix == ".csv":
        return _CsvWriter(out, model_info)
    if suffix == ".jsonl":
        return _JsonlWriter(out, model_info)
    return _JsonWriter(out, model_info)


def write_results(forms: Iterable[FormResult], out: Path, model_info: dict[str, Any]) -> int:
    """Write all ``forms`` to ``out`` (see ``open_writer``); returns the number of pages.

    Raises:
        OutputError: as ``open_writer`` / ``ResultWriter.add``.
    """
    with open_writer(out, model_info) as w:
        for form in forms:
            w.add(form)
        return w.pages


def _open_text(path: Path) -> IO[str]:
    try:
        # backslashreplace: a file name that is not valid UTF-8 stays visible, the file valid.
        return open(path, "w", encoding="utf-8", errors="backslashreplace", newline="")
    except OSError as e:
        raise _output_error(path, e) from e


def _output_error(path: Path, e: OSError) -> OutputError:
    if isinstance(e, IsADirectoryError):
        why = "is a directory"
    elif isinstance(e, PermissionError):
        why = "permission denied"
    else:
        why = " ".join((e.strerror or str(e)).split())
    return OutputError(f"cannot write {path}: {why}")


# --------------------------------------------------------------------------- schema, reading


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the JSON output, shipped as package data.

    Its ``$defs/page`` also validates one JSONL line.
    """
    text = resources.files("pipeline").joinpath("schema/results.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def read_results(path: Path) -> list[dict[str, Any]]:
    """Read a results file back (round-trip tests, ``evaluate``).

    Args:
        path: ``.json``, ``.jsonl`` (also a JSON run's ``.partial.jsonl`` sidecar) or ``.csv``.

    Returns:
        JSON / JSONL: the page objects, as ``form_to_dict`` made them (JSONL lines keep their
        ``schema_version`` key). CSV: one dict per row with ``page`` int, ``field`` / ``value``
        str (leading zeros kept), ``confidence`` float or None, ``flagged`` bool or None (rows
        without a field), ``flags`` list of str, ``status`` str, ``error`` str or None.

    Raises:
        InputError: missing or unreadable file, unknown suffix, malformed content, or a
            schema version this code does not know.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{path}: unknown results format {suffix!r}", hint=_READ_HINT)
    try:
        if suffix == ".csv":
            return _read_csv(path)
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}", hint=_READ_HINT) from e
    try:
        if suffix == ".json":
            doc = json.loads(text)
            _check_version(path, doc)
            return list(doc["pages"])
        pages = []
        for line in text.split("\n"):  # not splitlines(): U+2028 or U+0085 may sit inside strings
            if line.strip():
                page = json.loads(line)
                _check_version(path, page)
                pages.append(page)
        return pages
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a digitform results file ({e})", hint=_READ_HINT) from e


def _check_version(path: Path, obj: Any) -> None:
    version = obj.get("schema_version") if isinstance(obj, dict) else None
    if version != SCHEMA_VERSION:
        raise InputError(f"{path}: schema_version {version!r}, expected {SCHEMA_VERSION}", hint=_READ_HINT)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not a digitform results CSV ({' '.join(str(e).split())})", hint=_READ_HINT) from e
    if tuple(df.columns) != CSV_COLUMNS:
        raise InputError(f"{path}: CSV columns {list(df.columns)}, expected {list(CSV_COLUMNS)}", hint=_READ_HINT)
    rows = []
    for rec in df.to_dict(orient="records"):
        try:
            rows.append(
                {
                    "source": rec["source"],
                    "page": int(rec["page"]),
                    "field": rec["field"],
                    "value": rec["value"],
                    "confidence": float(rec["confidence"]) if rec["confidence"] != "" else None,
                    "flagged": {"true": True, "false": False, "": None}[rec["flagged"].lower()],
                    "flags": rec["flags"].split(FLAG_SEPARATOR) if rec["flags"] else [],
                    "status": rec["status"],
                    "error": rec["error"] or None,
                }
            )
        except (ValueError, KeyError) as e:
            raise InputError(f"{path}: bad CSV row {len(rows) + 2} ({e})", hint=_READ_HINT) from e
    return rows

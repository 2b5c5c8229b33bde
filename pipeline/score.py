"""Scoring: predicted pages + truth pages (both in the JSON output shape) -> recall, accuracy and flag metrics.

Both sides are page dicts as written by ``digitform`` (and by ``digitform synth`` in
``truth.json``)::

    {"source", "page", "fields": [{"name", "box", "value", "digits": [{"box", "digit", "blank", "flagged"?}]}]}

Pages are matched by (file name without folder, 1-based page). A truth cell is *found* when a
predicted digit box overlaps it with IoU >= ``iou`` (greedy, best IoU first, one to one), so
cell finding and reading are scored separately: ``cell_recall`` / ``cell_precision`` say
how well the boxes were found, ``digit_accuracy`` how many written digits came out right in
the end (a digit in a cell that was not found counts as wrong).

A ratio whose denominator is zero is reported as 1.0 (nothing to find, nothing missed), except
``flag_rate``, which is then 0.0.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .calibration import ece
from .errors import InputError

log = logging.getLogger(__name__)
_HINT = "pass the truth.json written by 'digitform synth'"

COUNTS = (
    "pages_truth", "pages_missing", "cells_truth", "cells_found", "cells_predicted", "digits_truth",
    "digits_found", "digits_correct", "blank_truth", "blank_correct", "false_digits_on_blank",
    "errors_unflagged", "errors_flagged", "predicted_digits", "flagged", "flagged_blanks", "fields_truth", "fields_exact",
    "spurious_digits", "spurious_unflagged", "fields_flagged", "fields_wrong_unflagged",
    "digits_legible", "digits_correct_legible", "errors_unflagged_legible", "illegible_wrong_unflagged",
)
LEGIBLE_INK = 0.5  # a written digit is legible when its scan kept at least this share of its stroke core (truth "ink_kept")
STRAYING = 0.1  # ... and strays over its ruling when at least this share of its stroke core lies outside its cell (truth "ink_outside")
LOSS_CAUSES = ("not_found", "degraded", "straying", "other")


def loss_cause(d: dict, found: bool, legible: float = LEGIBLE_INK, stray: float = STRAYING) -> str:
    """The first of ``LOSS_CAUSES`` that applies to a written truth digit (``benchmarks/error_breakdown.py``).

    Args:
        d: the digit's truth cell (``ink_kept`` and ``ink_outside`` from ``pipeline.synth``;
            absent keys count as legible and inside the cell). found: its cell was found.
        legible: ``ink_kept`` below this is ``degraded``. stray: ``ink_outside`` at or above
            this is ``straying``.

    Returns:
        "not_found", "degraded", "straying" or "other" (found, legible, inside its cell).
    """
    if not found:
        return "not_found"
    if float(d.get("ink_kept", 1.0)) < legible:
        return "degraded"
    if float(d.get("ink_outside", 0.0)) >= stray:
        return "straying"
    return "other"


def load_truth(path: Path) -> list[dict]:
    """Read a ``truth.json`` and return its pages with ``source`` made an absolute path.

    Args:
        path: the ``truth.json`` written by ``pipeline.synth.generate_forms`` (or by hand, same shape).

    Returns:
        Page dicts as stored, ``source`` resolved against the folder holding ``truth.json``.

    Raises:
        InputError: the file is missing, not JSON, or holds no ``pages`` list.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read truth file: {exc}", hint=_HINT) from exc
    pages = doc.get("pages") if isinstance(doc, dict) else None
    if not isinstance(pages, list):
        raise InputError(f"{path}: no 'pages' list in the truth file", hint=_HINT)
    out = []
    for p in pages:
        p = dict(p)
        p["source"] = str((path.parent / str(p.get("source", ""))).resolve())
        out.append(p)
    return out


def page_key(page: dict) -> tuple[str, int]:
    """How pages are matched: (file name without folder, 1-based page)."""
    return Path(str(page.get("source", ""))).name, int(page.get("page", 1))


def cell_digit(d: dict) -> str | None:
    """The predicted/true digit as a one-character string, or None for a blank cell."""
    if d.get("blank"):
        return None
    v = d.get("digit")
    return None if v is None or v == "" else str(v)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) boxes [x, y, w, h] -> (N, M) intersection over union."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _match(iou: np.ndarray, thr: float) -> dict[int, int]:
    """Greedy one-to-one matching, best IoU first: {truth index: predicted index}."""
    pairs = np.argwhere(iou >= thr)
    order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable") if len(pairs) else []
    out: dict[int, int] = {}
    used: set[int] = set()
    for k in order:
        t, p = int(pairs[k, 0]), int(pairs[k, 1])
        if t not in out and p not in used:
            out[t] = p
            used.add(p)
    return out


def page_cells(page: dict) -> list[tuple[int, dict]]:
    """A page's cells as (field index, cell) in reading order: the numbering of ``match_cells``."""
    return [(fi, d) for fi, f in enumerate(page.get("fields") or []) for d in (f.get("digits") or [])]


def match_cells(pred: dict | None, truth: dict, *, iou: float = 0.5) -> dict[int, int]:
    """Match a page's truth cells to its predicted cells, as ``score_page`` does.

    Cells are numbered in reading order over the page: field by field, cell by cell
    (``fields[i]["digits"][j]`` flattened). Greedy one-to-one matching by box IoU, best first.

    Args:
        pred: the predicted page (``form_to_dict`` shape), or None.
        truth: the truth page.
        iou: minimum intersection over union of the [x, y, w, h] source-pixel boxes.

    Returns:
        {truth cell number: predicted cell number} for the cells found.
    """
    tcells, pcells = page_cells(truth), page_cells(pred or {})
    tb = np.array([d["box"] for _, d in tcells], float).reshape(-1, 4)
    pb = np.array([d["box"] for _, d in pcells], float).reshape(-1, 4)
    return _match(_iou(tb, pb), iou)


def field_pairs(m: dict[int, int], tcells: list[tuple[int, dict]], pcells: list[tuple[int, dict]]) -> dict[int, int]:
    """{truth field index: predicted field index}: the predicted field holding most of each
    truth field's found cells (ties: the earlier field). Truth fields with no found cell are left out.

    Args:
        m: cell matches from ``match_cells`` ({truth cell number: predicted cell number}).
        tcells, pcells: (field index, cell) in reading order, as numbered by ``match_cells``.
    """
    votes: dict[int, dict[int, int]] = {}
    for ti, pi in m.items():
        votes.setdefault(tcells[ti][0], {}).setdefault(pcells[pi][0], 0)
        votes[tcells[ti][0]][pcells[pi][0]] += 1
    return {fi: max(v.items(), key=lambda kv: (kv[1], -kv[0]))[0] for fi, v in sorted(votes.items())}


def field_value(f: dict) -> str:
    """A field's value: its ``value`` key, or else its non-blank digits in order."""
    if "value" in f and f["value"] is not None:
        return str(f["value"])
    return "".join(v for v in (cell_digit(d) for d in f.get("digits") or []) if v is not None)


def score_page(pred: dict | None, truth: dict, *, iou: float = 0.5) -> dict:
    """Counts for one page (the ``COUNTS`` keys plus ``source``, ``page`` and ``mistakes``).

    Args:
        pred: the predicted page, or None when the prediction has no such page.
        truth: the truth page.
        iou: minimum intersection over union for a predicted box to find a truth cell.

    Returns:
        Dict of int counts; ``mistakes`` lists each wrong or missed non-blank digit as
        {"field", "position", "truth", "pred", "flagged", "found"}; ``flag_reasons`` maps each
        per-digit flag reason (the digits' ``flags`` in the JSON output; absent in older
        files) to [right, wrong, right alone, wrong alone]: digits read (not blank verdicts)
        carrying it that are right or wrong (a misread written digit, or a digit read where
        none is written), and of those, the ones it alone flagged.
    """
    c = dict.fromkeys(COUNTS, 0)
    c.update(source=page_key(truth)[0], page=page_key(truth)[1], pages_truth=1, pages_missing=int(pred is None))
    tcells, pcells = page_cells(truth), page_cells(pred or {})
    tb = np.array([d["box"] for _, d in tcells], float).reshape(-1, 4)
    pb = np.array([d["box"] for _, d in pcells], float).reshape(-1, 4)
    m = _match(_iou(tb, pb), iou)
    mistakes = []
    c["cells_truth"], c["cells_found"], c["cells_predicted"] = len(tcells), len(m), len(pcells)
    truth_of = {pi: ti for ti, pi in m.items()}
    reasons: dict[str, list[int]] = {}
    for pi, (_, d) in enumerate(pcells):
        got = cell_digit(d)
        if got is not None:
            c["predicted_digits"] += 1
            c["flagged"] += int(bool(d.get("flagged")))
            right = pi in truth_of and cell_digit(tcells[truth_of[pi]][1]) == got
            flags = d.get("flags") or []
            for r in flags:
                tally = reasons.setdefault(str(r), [0, 0, 0, 0])
                tally[int(not right)] += 1
                tally[2 + int(not right)] += int(len(flags) == 1)
        else:
            c["flagged_blanks"] += int(bool(d.get("flagged")))
    tfield_pos: dict[int, int] = {}
    for ti, (fi, d) in enumerate(tcells):
        pos = tfield_pos.get(fi, 0)
        tfield_pos[fi] = pos + 1
        want = cell_digit(d)
        got = cell_digit(pcells[m[ti]][1]) if ti in m else None
        flagged = bool(pcells[m[ti]][1].get("flagged")) if ti in m else False
        if want is None:
            c["blank_truth"] += 1
            if ti in m:
                c["blank_correct"] += int(got is None)
                c["false_digits_on_blank"] += int(got is not None)
                if got is not None:
                    c["spurious_digits"] += 1
                    c["spurious_unflagged"] += int(not flagged)
            continue
        c["digits_truth"] += 1
        legible = float(d.get("ink_kept", 1.0)) >= LEGIBLE_INK
        c["digits_legible"] += int(legible)
        right = ti in m and got == want
        c["digits_correct_legible"] += int(legible and right)
        c["errors_unflagged_legible"] += int(legible and ti in m and not right and not flagged)
        c["illegible_wrong_unflagged"] += int(not legible and ti in m and not right and not flagged)
        if ti not in m:
            mistakes.append({"field": fi, "position": pos, "truth": want, "pred": None, "flagged": False, "found": False})
            continue
        c["digits_found"] += 1
        if got == want:
            c["digits_correct"] += 1
            continue
        c["errors_flagged" if flagged else "errors_unflagged"] += 1
        mistakes.append({"field": fi, "position": pos, "truth": want, "pred": got, "flagged": flagged, "found": True})
    # digits read in cells that are no truth cell at all (a false cell: a letter's bowl, a
    # checkbox): like digits read on blank cells, they put a digit into the output that is not there
    matched = set(m.values())
    for pi, (_, d) in enumerate(pcells):
        if pi not in matched and cell_digit(d) is not None:
            c["spurious_digits"] += 1
            c["spurious_unflagged"] += int(not d.get("flagged"))
    # fields: the predicted field holding most of the truth field's found cells
    tfields, pfields = truth.get("fields") or [], (pred or {}).get("fields") or []
    c["fields_truth"] = len(tfields)
    outcomes = []
    for fi, best in field_pairs(m, tcells, pcells).items():
        exact = field_value(pfields[best]) == field_value(tfields[fi])
        c["fields_exact"] += int(exact)
        flagged = bool(pfields[best].get("flagged"))
        c["fields_wrong_unflagged"] += int(not exact and not flagged)
        c["fields_flagged"] += int(flagged)
        conf = pfields[best].get("confidence")
        if conf is not None:
            outcomes.append([float(conf), exact, flagged])
    c["mistakes"] = mistakes
    c["field_outcomes"] = outcomes
    c["flag_reasons"] = reasons
    return c


def _ratio(a: int, b: int, empty: float = 1.0) -> float:
    return a / b if b else empty


def _field_calibration(outcomes: list[list]) -> dict:
    """Field confidence against field exactness over found fields (``[confidence, exact, flagged]``).

    Returns ``field_confidence`` (mean field confidence), ``field_accuracy_found`` (share of
    those fields read exactly), ``field_ece`` (expected calibration error, 15 bins, Guo et al.
    2017: does a field confidence of 0.9 mean "the whole value is right 9 times in 10"?) and
    ``field_ece_unflagged`` (the same over the fields left unflagged, the ones nobody checks).
    All 1.0 / 0.0 defaults when no found field has a confidence (truth against truth).
    """
    if not outcomes:
        return {"field_confidence": 1.0, "field_accuracy_found": 1.0, "field_ece": 0.0, "field_ece_unflagged": 0.0}
    a = np.asarray(outcomes, np.float64).reshape(-1, 3)
    un = a[:, 2] == 0
    return {
        "field_confidence": float(a[:, 0].mean()),
        "field_accuracy_found": float(a[:, 1].mean()),
        "field_ece": ece(a[:, 0], a[:, 1] > 0),
        "field_ece_unflagged": ece(a[un, 0], a[un, 1] > 0),
    }


def _sum_reasons(per_page: list[dict]) -> dict[str, dict[str, int]]:
    """Per-page ``flag_reasons`` summed: {reason: {"right", "wrong", "right_alone", "wrong_alone"}}, sorted by name."""
    total: dict[str, list[int]] = {}
    for p in per_page:
        for r, t in p["flag_reasons"].items():
            total[r] = [a + b for a, b in zip(total.get(r, [0, 0, 0, 0]), t)]
    return {r: dict(zip(("right", "wrong", "right_alone", "wrong_alone"), t)) for r, t in sorted(total.items())}


def score_pages(pred_pages: list[dict], truth_pages: list[dict], *, iou: float = 0.5) -> dict:
    """Score predicted pages against truth pages.

    Args:
        pred_pages: pages from digitform's JSON output (``source`` may be any path; its file
            name and ``page`` identify the page). Pages with no truth are ignored.
        truth_pages: pages from ``truth.json`` (see ``load_truth``).
        iou: minimum IoU between a predicted and a truth cell box (both [x, y, w, h] in
            source-image pixels) for the cell to count as found.

    Returns:
        Dict with the summed counts (``COUNTS``), the ratios ``cell_recall``
        (cells_found / cells_truth), ``cell_precision`` (cells_found / cells_predicted),
        ``digit_accuracy`` (digits_correct / digits_truth, missed cells count as wrong),
        ``digit_accuracy_found`` (digits_correct / digits_found),
        ``digit_accuracy_legible`` (digits_correct_legible / digits_legible: over the written
        digits whose scan kept at least ``LEGIBLE_INK`` of their stroke core, truth key
        ``ink_kept`` from ``pipeline.synth``; a digit without that key counts as legible),
        ``errors_unflagged_legible`` and ``illegible_wrong_unflagged`` (found digits read
        wrong and not flagged, legible or not), ``blank_accuracy``,
        ``spurious_digits`` (digits read on blank truth cells or on cells that are no truth
        cell) and ``spurious_unflagged`` (those not flagged: wrong digits in the output that
        ``errors_unflagged`` does not count, since no written digit was misread),
        ``flag_rate`` (flagged / predicted_digits), ``review_rate`` (flagged cells, digits
        and blank verdicts, / cells_predicted: the reviewer's load), ``caught`` (errors_flagged / errors among
        found non-blank cells), ``field_accuracy`` (fields_exact / fields_truth),
        ``fields_flagged`` and ``fields_wrong_unflagged`` (found fields flagged, and read
        wrong but not flagged: values that would go out unchecked), the field calibration
        figures of ``_field_calibration`` (``field_confidence``, ``field_accuracy_found``,
        ``field_ece``, ``field_ece_unflagged``), ``flag_reasons`` (per review reason, the
        digits read that carry it, right and wrong, and those it alone flagged: which rules
        earn their reviews on your forms; empty for output written without per-digit
        ``flags``), and ``per_page``: the per-page counts from ``score_page``, in truth order.

    >>> score_pages(truth, truth)["digit_accuracy"]  # doctest: +SKIP
    1.0
    """
    preds: dict[tuple[str, int], dict] = {}
    for p in pred_pages:
        if page_key(p) in preds:
            log.warning("prediction lists %s page %d twice; the first one is scored", *page_key(p))
            continue
        preds[page_key(p)] = p
    per_page = [score_page(preds.get(page_key(t)), t, iou=iou) for t in truth_pages]
    s: dict = {k: sum(p[k] for p in per_page) for k in COUNTS}
    errors = s["errors_flagged"] + s["errors_unflagged"]
    s.update(
        cell_recall=_ratio(s["cells_found"], s["cells_truth"]),
        cell_precision=_ratio(s["cells_found"], s["cells_predicted"]),
        digit_accuracy=_ratio(s["digits_correct"], s["digits_truth"]),
        digit_accuracy_found=_ratio(s["digits_correct"], s["digits_found"]),
        digit_accuracy_legible=_ratio(s["digits_correct_legible"], s["digits_legible"]),
        blank_accuracy=_ratio(s["blank_correct"], s["blank_truth"]),
        flag_rate=_ratio(s["flagged"], s["predicted_digits"], 0.0),
        review_rate=_ratio(s["flagged"] + s["flagged_blanks"], s["cells_predicted"], 0.0),
        caught=_ratio(s["errors_flagged"], errors),
        field_accuracy=_ratio(s["fields_exact"], s["fields_truth"]),
        **_field_calibration([o for p in per_page for o in p["field_outcomes"]]),
        flag_reasons=_sum_reasons(per_page),
        iou=iou,
        per_page=per_page,
    )
    return s


def format_report(scores: dict) -> str:
    """A short plain-text report of ``score_pages`` output: totals, then one line per page."""
    s = scores
    lines = [
        f"pages {s['pages_truth']} (missing {s['pages_missing']})   IoU >= {s['iou']}",
        f"cells   recall {s['cell_recall']:.4f} ({s['cells_found']}/{s['cells_truth']})   "
        f"precision {s['cell_precision']:.4f} ({s['cells_found']}/{s['cells_predicted']})",
        f"digits  accuracy {s['digit_accuracy']:.4f} ({s['digits_correct']}/{s['digits_truth']})   "
        f"on found cells {s['digit_accuracy_found']:.4f}   legible {s['digit_accuracy_legible']:.4f} "
        f"({s['digits_correct_legible']}/{s['digits_legible']}; {s['digits_truth'] - s['digits_legible']} degraded past reading, "
        f"{s['illegible_wrong_unflagged']} of them read wrong unflagged)",
        f"blanks  correct {s['blank_correct']}/{s['blank_truth']}   digits read on blank cells {s['false_digits_on_blank']}",
        f"flags   flag rate {s['flag_rate']:.4f} ({s['flagged']}/{s['predicted_digits']})   caught {s['caught']:.4f} "
        f"({s['errors_flagged']} flagged, {s['errors_unflagged']} unflagged errors)   "
        f"blank verdicts flagged {s['flagged_blanks']}   review rate {s['review_rate']:.4f}",
        f"spurious digits read where none is written {s['spurious_digits']} ({s['spurious_unflagged']} unflagged)",
        f"fields  exact {s['field_accuracy']:.4f} ({s['fields_exact']}/{s['fields_truth']})   "
        f"flagged {s['fields_flagged']}   wrong and unflagged {s['fields_wrong_unflagged']}   "
        f"mean confidence {s['field_confidence']:.4f} (exact on found {s['field_accuracy_found']:.4f}, ECE {s['field_ece']:.4f})",
    ]
    if s.get("flag_reasons"):
        lines.append("flag reasons (digits read carrying it: right / wrong; flagged by it alone: right / wrong)")
        lines += [f"  {r:<16} {t['right']:>6} / {t['wrong']:<6} alone {t['right_alone']:>6} / {t['wrong_alone']}" for r, t in s["flag_reasons"].items()]
    lines += [
        "",
        f"{'source':<28} {'page':>4} {'cells':>11} {'digits':>11} {'fields':>9}",
    ]
    for p in s["per_page"]:
        tag = "  MISSING" if p["pages_missing"] else ""
        lines.append(
            f"{p['source']:<28} {p['page']:>4} {p['cells_found']:>5}/{p['cells_truth']:<5} "
            f"{p['digits_correct']:>5}/{p['digits_truth']:<5} {p['fields_exact']:>4}/{p['fields_truth']:<4}{tag}"
        )
    return "\n".join(lines)

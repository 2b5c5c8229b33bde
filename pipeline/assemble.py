"""PageLayout + DigitCrop + DigitPrediction -> FieldResult / FormResult, with review flags."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .types import DigitCrop, DigitPrediction, DigitResult, FieldResult, FormResult, PageLayout, PageStatus

FLAG_LOW_CONFIDENCE = "low_confidence"  # some digit is below --min-confidence
FLAG_EMBEDDED_BLANK = "embedded_blank"  # a blank cell between written digits
FLAG_NOT_A_DIGIT = "not_a_digit"  # a mark the model takes for a letter, cross or scribble
FLAG_STRAY_INK = "stray_ink"  # much ink inside a cell was judged to belong elsewhere: the verdict is doubtful
REJECT_LEVEL = 0.5  # reject-class probability above which a mark is called not a digit
# Dropped ink covering this share of a cell interior (and at least half the kept ink) flags
# the cell: as much ink as the faintest 5% of written digits (5th percentile of kept-ink
# cover on the synthetic development forms, seeds 100 and 200; median 14%).
STRAY_LEVEL = 0.05
# A blank verdict needs less: dropped ink over BLANK_STRAY_LEVEL of the cell. On the development
# forms (11 sets, seeds 100-14001; 75 written digits read as blank, 3,651 blank cells read as
# blank) it catches 6 more of the written digits than STRAY_LEVEL (43 of 75 with ``ink_on_line``)
# for 25 more blank cells flagged; at 0.02, 9 more for 51.
BLANK_STRAY_LEVEL = 0.03
FLAG_INK_ON_LINE = "ink_on_line"  # a stroke lies on the cell's box line: the cell was read as blank, or read from that stroke
# A blank verdict is flagged when a stroke thickens one of the cell's box lines over this
# share of its length (``segment.stroke_on_box_line``). Chosen on the synthetic development
# forms (seeds 100, 200, 300, 8000): at 0.3, 13 of the 21 written cells read as blank are
# caught, for 13 of 800 truly blank cells flagged.
ON_LINE_LEVEL = 0.3
FLAG_SMALL_MARK = "small_mark"  # the mark read is too small or faint to be a whole digit
# A digit is flagged when its mark spans less than SMALL_EXTENT of the cell height (longer
# side of its bounding box) or covers less than FAINT_INK of the cell. MNIST normalisation
# scales every mark to 20 px, so the model cannot tell a stroke fragment (a faint digit
# broken by binarisation, the tip of a neighbour's digit) from a whole "1" or "7". On the
# development forms (seeds 100, 200, 300, 8000; 1,735 marks read) the 1st percentile of
# correctly read digits is 0.46 cell heights and 2.9% ink; at 0.4 and 2.5%, 34 marks are
# flagged, 17 of them wrong, 5 of them errors that no other rule flagged.
SMALL_EXTENT = 0.4
FAINT_INK = 0.025
FLAG_LARGE_MARK = "large_mark"  # the mark read is larger than its cell: likely not this cell's digit
# A digit is flagged when its mark (strokes followed up to 0.3 cell sides outside the box)
# spans more than LARGE_EXTENT cell heights: a box found where there is none (a letter's
# bowl, a logo) or found off its place, around part of something bigger. On the development
# forms 99.2% of correctly read digits span at most 1.1 cell heights; above it, 12 of
# 1,579 correct digits were flagged, and 7 of the 17 unflagged digits read where none is written.
LARGE_EXTENT = 1.1
# Since the twenty-fourth session the rule applies to fields of one cell only. On 18
# development sets (seeds 20000-28001, 26,122 digits read) the digits that it alone flagged
# were right in all 95 cases within fields of several cells (a tall digit, a long tail), and
# wrong in 4 of 7 in single-cell fields (a letter's bowl or a logo taken for a box). With
# the change on those sets: the same digits read, 132 right digits no longer flagged (19 of
# 9,926 ``sample``-style, 113 of 16,196 ``holdout``-style; some had been re-read only because
# of this flag), no error or spurious digit newly unflagged.
FLAG_CROSSES_CELL = "crosses_cell"  # the mark read runs into another found cell: a neighbour's digit, or one shared by two cells
# A digit is flagged when at least CROSS_LEVEL of its kept mark lies inside the interior of
# another found cell (``DigitCrop.in_other``). On the development forms (seeds 100, 200, 300,
# 8000; 1,765 marks read) it catches 9 of the 20 wrong digits that no other rule flagged (most
# are a neighbour's digit reaching across a wall into a blank cell) for 15 of 1,674 correct
# digits newly flagged; at 0.2 it catches the same 9 for 23, at 0.3 only 7.
CROSS_LEVEL = 0.25
FLAG_CUT_MARK = "cut_mark"  # the mark read runs on beyond the area searched around the cell: the crop holds only part of it
FLAG_OUTSIDE_CELL = "outside_cell"  # the mark read lies mostly outside the cell (a digit written over its box, or a neighbour's)
FLAG_REREAD = "reread"  # the first reading was doubtful; this one, from a second segmentation, the model finds more likely (run.reread_doubtful)
FLAG_READINGS_DIFFER = "readings_differ"  # the segmentation keeping strokes on thickened box lines reads another digit, at run.DISPUTE_LEVEL or more (run.reread_doubtful)
FLAG_IN_TEXT = "in_text"  # a single cell standing in a line of printed letters: likely a letter taken for a box (boxes._in_text_line)
# A digit is flagged when its kept strokes lie along the edges of the search region (0.3 cell
# sides around the box) over at least RUN_ON_LEVEL cell heights (``DigitCrop.run_on``). On the
# development forms (seeds 100, 200, 300, 8000, 11000, 11001; 2,617 marks read) it catches 3 of
# the 15 wrong digits no other rule flagged, for 10 of 2,478 correct digits newly flagged; at
# 0.05 the same 3 for 13, at 0.15 only 2.
RUN_ON_LEVEL = 0.1
# Field confidence: P(the whole value is right) = sigmoid(w . [ln(product of the cells'
# confidences), cells read as digits, cells read as blank, 1 if a segmentation flag is raised, 1]).
# The product alone assumes that only the classifier errs; on forms a missed or misfound cell,
# a digit lost with a box line or a blank verdict on a written cell make whole fields wrong
# with every cell confident. Logistic regression (L2 0.1) fitted by
# ``scripts/fit_field_confidence.py`` on the fields of the synthetic development forms (seeds
# 100, 8000, 11000-13000 ``sample`` and 200, 300, 11001-13001 ``holdout``; 1,581 fields found),
# shipped model of the tenth session. Refit after changing the model or segmentation.
FIELD_CONFIDENCE_WEIGHTS = (1.442, 0.067, 0.072, -1.284, 2.325)


def _doubtful_segmentation(crop: DigitCrop) -> bool:
    """A cell read as blank, or as a small mark, while a larger mark judged to belong to a
    neighbour (or a digit straying in) covers much of it (``BLANK_STRAY_LEVEL`` of a blank
    cell, ``STRAY_LEVEL`` of one read as a digit)."""
    return crop.stray >= (BLANK_STRAY_LEVEL if crop.blank else STRAY_LEVEL) and crop.stray >= 0.5 * crop.ink


def _small_mark(crop: DigitCrop) -> bool:
    """A mark read as a digit that is too small or faint to be a whole one."""
    return not crop.blank and (crop.extent < SMALL_EXTENT or crop.ink < FAINT_INK)


def _large_mark(crop: DigitCrop, single_cell: bool) -> bool:
    """A mark read as a digit that is larger than its cell, in a field of one cell (``LARGE_EXTENT``)."""
    return single_cell and not crop.blank and crop.extent > LARGE_EXTENT


def _crosses_cell(crop: DigitCrop) -> bool:
    """A mark read as a digit that lies largely inside another cell."""
    return not crop.blank and crop.in_other >= CROSS_LEVEL


def _cut_mark(crop: DigitCrop) -> bool:
    """A mark read as a digit whose strokes run on beyond the region searched around the cell."""
    return not crop.blank and crop.run_on >= RUN_ON_LEVEL


def _outside_cell(crop: DigitCrop) -> bool:
    """A verdict read from a mark lying mostly outside the cell (``segment._claim_straying_mark``)."""
    return not crop.blank and crop.outside


def _reread(crop: DigitCrop) -> bool:
    """A verdict taken from a second segmentation after the first reading was flagged: it stays flagged."""
    return crop.reread


def _disputed(crop: DigitCrop) -> bool:
    """A verdict that a second, confident reading of the cell contradicts (``DigitCrop.disputed``)."""
    return crop.disputed


def _stroke_on_line(crop: DigitCrop) -> bool:
    """A cell whose box line carries a stroke (a "1" written on the wall): read as blank, or
    read from that stroke (``segment._stroke_on_wall``; ``on_line`` is measured only then)."""
    return crop.on_line >= ON_LINE_LEVEL


# the reasons a single cell is flagged, in the order a field lists them
_DIGIT_FLAGS = (
    FLAG_LOW_CONFIDENCE, FLAG_NOT_A_DIGIT, FLAG_STRAY_INK, FLAG_INK_ON_LINE, FLAG_SMALL_MARK, FLAG_LARGE_MARK, FLAG_CROSSES_CELL,
    FLAG_CUT_MARK, FLAG_OUTSIDE_CELL, FLAG_REREAD, FLAG_READINGS_DIFFER,
)


def _digit_flags(crop: DigitCrop, pred: DigitPrediction, threshold: float, single_cell: bool) -> tuple[str, ...]:
    """The reasons (``_DIGIT_FLAGS`` names, in that order) why one cell's verdict needs review;
    ``single_cell``: the cell is its field's only one."""
    hits = (
        pred.confidence < threshold,
        pred.reject > REJECT_LEVEL,
        _doubtful_segmentation(crop),
        _stroke_on_line(crop),
        _small_mark(crop),
        _large_mark(crop, single_cell),
        _crosses_cell(crop),
        _cut_mark(crop),
        _outside_cell(crop),
        _reread(crop),
        _disputed(crop),
    )
    return tuple(name for name, hit in zip(_DIGIT_FLAGS, hits) if hit)


def field_confidence(cell_confidences: Sequence[float], n_blank: int, segmentation_flagged: bool) -> float:
    """Probability that a field's whole value is right (``FIELD_CONFIDENCE_WEIGHTS``).

    Args:
        cell_confidences: every cell's confidence, digits and blank verdicts, each in [0, 1].
        n_blank: how many of those cells were read as blank.
        segmentation_flagged: the field carries a flag other than ``low_confidence`` (a
            segmentation rule, ``not_a_digit`` or ``embedded_blank``); the review threshold
            plays no part, so the figure does not change with ``--min-confidence``.

    Returns:
        A probability in (0, 1); 1.0 for a field with no cell.
    """
    if not cell_confidences:
        return 1.0
    w_log, w_digit, w_blank, w_seg, bias = FIELD_CONFIDENCE_WEIGHTS
    log_prod = sum(math.log(min(1.0, max(c, 1e-6))) for c in cell_confidences)
    z = w_log * log_prod + w_digit * (len(cell_confidences) - n_blank) + w_blank * n_blank + w_seg * float(segmentation_flagged) + bias
    return 1.0 / (1.0 + math.exp(-z))


def assemble_form(
    layout: PageLayout,
    crops: Sequence[Sequence[DigitCrop]],
    predictions: Sequence[Sequence[DigitPrediction]],
    *,
    threshold: float,
    upside_down: bool = False,
) -> FormResult:
    """Turn one page's predictions into results and decide what needs review.

    A digit (or a blank verdict) is flagged when its confidence is below ``threshold``, when
    the model's "not a digit" class outweighs ``REJECT_LEVEL``, or when segmentation dropped
    much ink inside the cell as belonging elsewhere (``STRAY_LEVEL``, ``BLANK_STRAY_LEVEL`` for
    a blank verdict; flag ``stray_ink``).
    A blank verdict, or a digit read from a stroke on a side wall, is also flagged when a
    stroke lies on the cell's box line (``ON_LINE_LEVEL``; flag ``ink_on_line``), and a digit when its mark is too small or
    faint to be a whole digit (``SMALL_EXTENT``, ``FAINT_INK``; flag ``small_mark``) or, in a
    field of one cell, larger than its cell (``LARGE_EXTENT``; flag ``large_mark``), lying largely inside another
    cell (``CROSS_LEVEL``; flag ``crosses_cell``) or running on beyond the region searched
    around the cell (``RUN_ON_LEVEL``; flag ``cut_mark``). A verdict taken from a second
    segmentation after the first was flagged (``DigitCrop.reread``) stays flagged (``reread``).
    A mark read in a single cell that stands in a line of printed letters (``FieldBoxes.in_text``)
    is flagged ``in_text``: the "cell" is likely a letter's bowl read as a "1" or "0".
    A field is flagged when any of its cells is, or when a blank cell sits between written
    digits. Field confidence is the probability that the whole value is right
    (``field_confidence``: the product of its cells' confidences, corrected for the errors of
    box finding and segmentation that no cell confidence sees).

    Args:
        layout: the page layout, fields in the aligned page's reading order.
        crops, predictions: per field, per cell, in the same order as ``layout.fields``.
        threshold: minimum confidence, in [0, 1].
        upside_down: the page was read rotated 180 degrees; fields and cells are then
            reported in the reading order of the upright page.

    Returns:
        The page's ``FormResult`` (status ``ok`` or ``needs_review``).
    """
    page = layout.aligned.page
    order = list(range(len(layout.fields)))
    if upside_down:
        order.reverse()
    fields = []
    for out_i, fi in enumerate(order):
        fb = layout.fields[fi]
        cells = list(zip(fb.cells, crops[fi], predictions[fi]))
        if upside_down:
            cells.reverse()
        reasons = [_digit_flags(crop, pred, threshold, len(cells) == 1) + ((FLAG_IN_TEXT,) if fb.in_text and not crop.blank else ()) for _, crop, pred in cells]
        digits = tuple(DigitResult(cell, crop, pred, flagged=bool(r), flags=r) for (cell, crop, pred), r in zip(cells, reasons))
        value = "".join(str(d.prediction.digit) for d in digits if d.prediction.digit is not None)
        flags = [name for name in (*_DIGIT_FLAGS, FLAG_IN_TEXT) if any(name in r for r in reasons)]
        written = [i for i, d in enumerate(digits) if not d.blank]
        if written and any(digits[i].blank for i in range(written[0], written[-1] + 1)):
            flags.append(FLAG_EMBEDDED_BLANK)
        seg = any(name != FLAG_LOW_CONFIDENCE for name in flags)
        conf = field_confidence([d.prediction.confidence for d in digits], sum(d.blank for d in digits), seg)
        fields.append(
            FieldResult(index=out_i, name=f"field_{out_i + 1}", box=fb.box, value=value, confidence=conf, flagged=bool(flags), flags=tuple(flags), digits=digits)
        )
    status = PageStatus.NEEDS_REVIEW if any(f.flagged for f in fields) else PageStatus.OK
    w, h = page.size
    return FormResult(
        source=page.source, page=page.number, status=status, error=None, width=w, height=h, fields=tuple(fields),
        rotation=180 if upside_down else layout.aligned.rotation, skew=layout.aligned.skew,
    )

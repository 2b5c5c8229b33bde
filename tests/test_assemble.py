"""pipeline.assemble (predictions -> FieldResult / FormResult) and the prediction helpers of
pipeline.classify.predictor, on hand-built layouts, crops and predictions (no images)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.assemble import (
    FIELD_CONFIDENCE_WEIGHTS,
    FLAG_EMBEDDED_BLANK,
    FLAG_LOW_CONFIDENCE,
    FLAG_STRAY_INK,
    STRAY_LEVEL,
    assemble_form,
    field_confidence,
)
from pipeline.classify.predictor import N_ALTERNATIVES, blank_prediction, prediction_from_probs
from pipeline.types import (
    AlignedPage,
    DigitBox,
    DigitCrop,
    DigitPrediction,
    FieldBoxes,
    Page,
    PageLayout,
    PageStatus,
)

W, H = 400, 300  # source pixels of the hand-built page
CELL = 20.0


def _cell(field: int, pos: int, x0: float, y0: float) -> DigitBox:
    box = (x0 + pos * CELL, y0, CELL, CELL)
    return DigitBox(field_index=field, position=pos, box=box, aligned_box=tuple(int(v) for v in box))


def make_layout(counts: list[int], *, rotation: int = 0, skew: float = 0.0) -> PageLayout:
    """A layout with one field per entry of ``counts`` (cells each), fields stacked downwards."""
    page = Page(source=Path("scan.png"), index=2, image=np.full((H, W), 255, np.uint8), dpi=None)
    aligned = AlignedPage(page=page, image=page.image, to_source=np.eye(3), rotation=rotation, skew=skew, score=1.0)
    fields = []
    for fi, n in enumerate(counts):
        cells = tuple(_cell(fi, k, 10.0, 10.0 + 40.0 * fi) for k in range(n))
        fields.append(FieldBoxes(index=fi, name=f"field_{fi + 1}", box=(10.0, 10.0 + 40.0 * fi, CELL * n, CELL), cells=cells))
    return PageLayout(
        aligned=aligned, fields=tuple(fields), ink=np.zeros((H, W), np.float32), lines=np.zeros((H, W), np.uint8), line_width=2.0
    )


def crop(cell: DigitBox, blank: bool) -> DigitCrop:
    return DigitCrop(cell=cell, pixels=np.zeros((28, 28), np.float32), blank=blank, ink=0.0 if blank else 0.2)


def pred(digit: int | None, confidence: float = 0.99) -> DigitPrediction:
    return DigitPrediction(digit=digit, confidence=confidence, margin=confidence / 2, alternatives=())


def build(layout: PageLayout, values: list[list[tuple[int | None, float]]], **kw):
    """assemble_form with one (digit or None, confidence) per cell, per field."""
    crops = [[crop(c, d is None) for c, (d, _) in zip(f.cells, vs)] for f, vs in zip(layout.fields, values)]
    preds = [[pred(d, p) for d, p in vs] for vs in values]
    kw.setdefault("threshold", 0.9)
    return assemble_form(layout, crops, preds, **kw)


# --------------------------------------------------------------------------- assemble_form


def test_value_skips_blank_cells_and_keeps_reading_order():
    lay = make_layout([6, 3])
    form = build(lay, [[(0, 0.99), (0, 0.99), (7, 0.99), (3, 0.99), (None, 1.0), (None, 1.0)], [(9, 0.99), (8, 0.99), (1, 0.99)]])
    assert [f.value for f in form.fields] == ["0073", "981"]
    assert [f.name for f in form.fields] == ["field_1", "field_2"]
    assert [f.index for f in form.fields] == [0, 1]
    assert [len(f.digits) for f in form.fields] == [6, 3]  # blank cells are kept in digits
    assert [d.blank for d in form.fields[0].digits] == [False] * 4 + [True] * 2
    assert [d.cell.position for d in form.fields[0].digits] == list(range(6))
    assert form.source == Path("scan.png") and form.page == 3  # 1-based page number
    assert (form.width, form.height) == (W, H)
    assert form.error is None


def test_all_confident_is_ok():
    form = build(make_layout([3]), [[(1, 0.95), (2, 0.99), (None, 1.0)]])
    f = form.fields[0]
    assert form.status is PageStatus.OK
    assert not f.flagged and f.flags == ()
    assert not any(d.flagged for d in f.digits)


def test_digit_below_threshold_flags_digit_field_and_page():
    form = build(make_layout([3, 2]), [[(1, 0.99), (2, 0.5), (3, 0.99)], [(4, 0.99), (5, 0.99)]], threshold=0.9)
    low, other = form.fields
    assert [d.flagged for d in low.digits] == [False, True, False]
    assert [d.flags for d in low.digits] == [(), (FLAG_LOW_CONFIDENCE,), ()]
    assert low.flagged and low.flags == (FLAG_LOW_CONFIDENCE,)
    assert not other.flagged and other.flags == ()
    assert form.status is PageStatus.NEEDS_REVIEW


def test_threshold_is_strict_lower_bound():
    form = build(make_layout([1]), [[(1, 0.9)]], threshold=0.9)
    assert not form.fields[0].digits[0].flagged
    assert form.status is PageStatus.OK


def test_faint_blank_cell_below_threshold_is_flagged():
    form = build(make_layout([2]), [[(4, 0.99), (None, 0.6)]], threshold=0.9)
    f = form.fields[0]
    assert f.value == "4"
    assert [d.flagged for d in f.digits] == [False, True]
    assert FLAG_LOW_CONFIDENCE in f.flags
    assert form.status is PageStatus.NEEDS_REVIEW


def test_field_confidence_is_the_logistic_model_of_the_cell_confidences():
    confs = [0.99, 0.95, 0.9, 1.0]
    form = build(make_layout([4]), [[(1, confs[0]), (2, confs[1]), (3, confs[2]), (None, confs[3])]], threshold=0.5)
    w_log, w_digit, w_blank, w_seg, bias = FIELD_CONFIDENCE_WEIGHTS
    z = w_log * math.log(math.prod(confs)) + 3 * w_digit + 1 * w_blank + bias
    assert form.fields[0].confidence == pytest.approx(1 / (1 + math.exp(-z)))
    # the review threshold plays no part: the same cells give the same field confidence
    assert build(make_layout([4]), [[(1, 0.99), (2, 0.95), (3, 0.9), (None, 1.0)]], threshold=0.97).fields[0].confidence == pytest.approx(
        form.fields[0].confidence)


def test_field_confidence_falls_with_cell_confidence_and_segmentation_flags():
    assert field_confidence([], 0, False) == 1.0
    sure = field_confidence([0.999] * 5, 0, False)
    assert field_confidence([0.999] * 4 + [0.6], 0, False) < sure
    assert field_confidence([0.999] * 5, 0, True) < sure
    assert 0.0 < field_confidence([1e-9] * 8, 0, True) < field_confidence([1.0], 0, False) < 1.0
    # an embedded blank is a segmentation flag, a low confidence is not
    emb = build(make_layout([3]), [[(1, 0.99), (None, 1.0), (2, 0.99)]]).fields[0]
    assert FLAG_EMBEDDED_BLANK in emb.flags
    assert emb.confidence == pytest.approx(field_confidence([0.99, 1.0, 0.99], 1, True))


def test_embedded_blank_is_flagged_but_trailing_and_leading_blanks_are_not():
    form = build(
        make_layout([4, 4]),
        [[(1, 0.99), (None, 1.0), (2, 0.99), (None, 1.0)], [(None, 1.0), (5, 0.99), (6, 0.99), (None, 1.0)]],
    )
    embedded, padded = form.fields
    assert embedded.value == "12"
    assert embedded.flags == (FLAG_EMBEDDED_BLANK,) and embedded.flagged
    assert not any(d.flagged for d in embedded.digits)  # a field-level flag, not a digit flag
    assert padded.flags == () and not padded.flagged
    assert form.status is PageStatus.NEEDS_REVIEW


def test_both_flags_together():
    form = build(make_layout([3]), [[(1, 0.3), (None, 1.0), (2, 0.99)]])
    assert form.fields[0].flags == (FLAG_LOW_CONFIDENCE, FLAG_EMBEDDED_BLANK)


def test_all_blank_field_is_ok_with_empty_value():
    form = build(make_layout([3]), [[(None, 1.0)] * 3])
    f = form.fields[0]
    assert f.value == "" and f.flags == () and f.confidence == pytest.approx(field_confidence([1.0] * 3, 3, False))
    assert form.status is PageStatus.OK


def test_page_without_fields_is_ok():
    form = build(make_layout([]), [])
    assert form.fields == () and form.status is PageStatus.OK


def test_rotation_and_skew_come_from_the_aligned_page():
    form = build(make_layout([1], rotation=90, skew=-1.5), [[(1, 0.99)]])
    assert form.rotation == 90 and form.skew == -1.5


def test_upside_down_reverses_fields_and_cells_and_renames():
    lay = make_layout([3, 2], skew=0.7)
    # as read on the page turned 180 degrees: field A (3 cells) then field B (2 cells)
    form = build(lay, [[(1, 0.99), (2, 0.99), (None, 1.0)], [(8, 0.99), (9, 0.5)]], upside_down=True)
    assert form.rotation == 180
    assert form.skew == 0.7
    assert [f.name for f in form.fields] == ["field_1", "field_2"]
    assert [f.index for f in form.fields] == [0, 1]
    first, second = form.fields
    # the upright page's first field is the layout's last one, cells right to left
    assert first.box == lay.fields[1].box
    assert [d.cell for d in first.digits] == list(reversed(lay.fields[1].cells))
    assert first.value == "98"
    assert [d.flagged for d in first.digits] == [True, False]
    assert first.flags == (FLAG_LOW_CONFIDENCE,)
    assert second.box == lay.fields[0].box
    assert [d.cell for d in second.digits] == list(reversed(lay.fields[0].cells))
    assert second.value == "21"
    assert [d.blank for d in second.digits] == [True, False, False]
    assert not second.flagged  # a leading blank after reversal is not embedded
    assert form.status is PageStatus.NEEDS_REVIEW


def test_upside_down_keeps_boxes_in_source_pixels():
    lay = make_layout([2])
    form = build(lay, [[(1, 0.99), (2, 0.99)]], upside_down=True)
    assert {d.cell.box for d in form.fields[0].digits} == {c.box for c in lay.fields[0].cells}


cells_st = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 9)), st.floats(0.0, 1.0)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(fields=st.lists(cells_st, max_size=4), threshold=st.floats(0.0, 1.0), upside_down=st.booleans())
def test_assemble_properties(fields, threshold, upside_down):
    lay = make_layout([len(f) for f in fields])
    form = build(lay, fields, threshold=threshold, upside_down=upside_down)
    order = list(reversed(fields)) if upside_down else fields
    assert len(form.fields) == len(fields)
    for f, cells in zip(form.fields, order):
        cells = list(reversed(cells)) if upside_down else cells
        assert f.value == "".join(str(d) for d, _ in cells if d is not None)
        n_blank = sum(d is None for d, _ in cells)
        seg = any(flag != FLAG_LOW_CONFIDENCE for flag in f.flags)
        assert f.confidence == pytest.approx(field_confidence([p for _, p in cells], n_blank, seg))
        assert 0.0 < f.confidence < 1.0
        assert [d.flagged for d in f.digits] == [p < threshold for _, p in cells]
        assert [d.flags for d in f.digits] == [(FLAG_LOW_CONFIDENCE,) if p < threshold else () for _, p in cells]
        assert (FLAG_LOW_CONFIDENCE in f.flags) == any(p < threshold for _, p in cells)
        assert f.flagged == bool(f.flags)
    review = any(f.flagged for f in form.fields)
    assert form.status is (PageStatus.NEEDS_REVIEW if review else PageStatus.OK)


# --------------------------------------------------------------------------- predictor helpers


def test_prediction_from_probs_argmax_margin_alternatives():
    p = np.array([0.01, 0.02, 0.05, 0.0, 0.7, 0.0, 0.2, 0.0, 0.02, 0.0], np.float32)
    d = prediction_from_probs(p)
    assert d.digit == 4
    assert d.confidence == pytest.approx(0.7)
    assert d.margin == pytest.approx(0.5)
    assert N_ALTERNATIVES == 2
    assert len(d.alternatives) == 2
    assert [label for label, _ in d.alternatives] == ["6", "2"]
    assert [prob for _, prob in d.alternatives] == pytest.approx([0.2, 0.05])
    probs = [prob for _, prob in d.alternatives]
    assert probs == sorted(probs, reverse=True)
    assert all(isinstance(label, str) for label, _ in d.alternatives)


def test_prediction_from_probs_certain():
    p = np.zeros(10, np.float32)
    p[9] = 1.0
    d = prediction_from_probs(p)
    assert d.digit == 9 and d.confidence == 1.0 and d.margin == 1.0
    assert len(d.alternatives) == 2 and all(prob == 0.0 for _, prob in d.alternatives)
    assert isinstance(d.digit, int)


def test_prediction_from_probs_random_vectors():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.dirichlet(np.ones(10)).astype(np.float32)
        d = prediction_from_probs(p)
        s = np.sort(p)[::-1]
        assert d.digit == int(np.argmax(p))
        assert d.confidence == pytest.approx(float(s[0]))
        assert d.margin == pytest.approx(float(s[0] - s[1]))
        assert [prob for _, prob in d.alternatives] == pytest.approx(s[1:3].tolist(), abs=1e-4)
        assert 0.0 <= d.margin <= d.confidence <= 1.0


def test_blank_prediction_confidence_falls_with_stray_ink():
    cell = _cell(0, 0, 0.0, 0.0)
    clean = blank_prediction(DigitCrop(cell, np.zeros((28, 28), np.float32), True, 0.0))
    assert clean.digit is None and clean.confidence == 1.0 and clean.alternatives == ()
    half = blank_prediction(DigitCrop(cell, np.zeros((28, 28), np.float32), True, 0.003), blank_ink=0.006)
    assert half.confidence == pytest.approx(0.75)
    at_limit = blank_prediction(DigitCrop(cell, np.zeros((28, 28), np.float32), True, 0.5), blank_ink=0.006)
    assert at_limit.confidence == pytest.approx(0.5)
    assert at_limit.digit is None


def test_not_a_digit_mark_is_flagged_even_when_its_digit_is_confident():
    from pipeline.assemble import FLAG_NOT_A_DIGIT

    layout = make_layout([2])
    cells = layout.fields[0].cells
    crops = [[crop(c, False) for c in cells]]
    mark = DigitPrediction(digit=4, confidence=0.95, margin=0.9, alternatives=(), reject=0.8)
    preds = [[pred(7, 0.99), mark]]
    form = assemble_form(layout, crops, preds, threshold=0.9)
    f = form.fields[0]
    assert [d.flagged for d in f.digits] == [False, True]
    assert FLAG_NOT_A_DIGIT in f.flags and FLAG_LOW_CONFIDENCE not in f.flags
    assert form.status is PageStatus.NEEDS_REVIEW


def test_eleven_class_probabilities_give_reject_and_digit_confidence():
    p = np.array([0.0] * 10 + [1.0], np.float32)
    p[3], p[10] = 0.3, 0.7
    out = prediction_from_probs(p)
    assert out.digit == 3 and out.reject == pytest.approx(0.7) and out.confidence == pytest.approx(0.3)


def test_blank_verdict_over_much_dropped_ink_is_flagged_stray_ink():
    lay = make_layout([3])
    cells = lay.fields[0].cells
    crops = [[
        DigitCrop(cells[0], np.zeros((28, 28), np.float32), False, 0.15, 0.0),  # a digit
        DigitCrop(cells[1], np.zeros((28, 28), np.float32), True, 0.0, STRAY_LEVEL + 0.01),  # blank, a neighbour's mark in it
        DigitCrop(cells[2], np.zeros((28, 28), np.float32), True, 0.0, STRAY_LEVEL / 5),  # blank, a speck of a neighbour
    ]]
    form = assemble_form(lay, crops, [[pred(4), pred(None, 1.0), pred(None, 1.0)]], threshold=0.9)
    d = form.fields[0].digits
    assert [x.flagged for x in d] == [False, True, False]
    assert form.fields[0].flags == (FLAG_STRAY_INK,) and form.status.value == "needs_review"


def test_a_blank_verdict_is_doubted_at_less_dropped_ink_than_a_digit():
    from pipeline.assemble import BLANK_STRAY_LEVEL

    assert BLANK_STRAY_LEVEL < STRAY_LEVEL
    stray = (BLANK_STRAY_LEVEL + STRAY_LEVEL) / 2  # between the two levels
    field = _one_field(
        [dict(blank=True, ink=0.0, stray=stray), dict(blank=False, ink=0.15, stray=stray), dict(blank=True, ink=0.0, stray=BLANK_STRAY_LEVEL / 2)],
        [pred(None, 1.0), pred(4), pred(None, 1.0)],
    )
    assert [x.flagged for x in field.digits] == [True, False, False]


def _one_field(crops: list[dict], preds: list[DigitPrediction]):
    """One field whose cells hold empty-pixel crops made from ``crops`` (``DigitCrop`` keyword
    arguments after the cell and pixels), assembled at threshold 0.9."""
    lay = make_layout([len(crops)])
    z = np.zeros((28, 28), np.float32)
    made = [[DigitCrop(cell, z, **kw) for cell, kw in zip(lay.fields[0].cells, crops)]]
    return assemble_form(lay, made, [preds], threshold=0.9).fields[0]


def test_a_stroke_on_the_box_line_is_flagged_ink_on_line():
    from pipeline.assemble import FLAG_INK_ON_LINE, ON_LINE_LEVEL

    field = _one_field([
        dict(blank=True, ink=0.0, on_line=ON_LINE_LEVEL + 0.2),  # a "1" on the wall, removed with it
        dict(blank=True, ink=0.0, on_line=ON_LINE_LEVEL / 3),  # a wall a little uneven
        dict(blank=False, ink=0.05, on_line=0.9),  # a "1" read from the stroke on its wall
        dict(blank=False, ink=0.1),  # a digit read from its own strokes: on_line is not measured
    ], [pred(None, 1.0), pred(None, 1.0), pred(1), pred(4)])
    assert [x.flagged for x in field.digits] == [True, False, True, False]
    assert field.flags == (FLAG_INK_ON_LINE,)


def test_a_mark_too_small_or_faint_for_a_whole_digit_is_flagged_small_mark():
    from pipeline.assemble import FAINT_INK, FLAG_SMALL_MARK, SMALL_EXTENT

    field = _one_field([
        dict(blank=False, ink=0.12, extent=0.7),  # a whole digit
        dict(blank=False, ink=0.12, extent=SMALL_EXTENT - 0.05),  # a short fragment
        dict(blank=False, ink=FAINT_INK / 2, extent=0.7),  # a faint, broken digit
        dict(blank=True, ink=0.0, extent=0.0),  # blank: nothing to flag
    ], [pred(1, 0.999), pred(1, 0.999), pred(7, 0.999), pred(None, 1.0)])
    assert [x.flagged for x in field.digits] == [False, True, True, False]
    assert field.flags == (FLAG_SMALL_MARK,)


def test_a_mark_larger_than_its_cell_is_flagged_large_mark():
    from pipeline.assemble import FLAG_LARGE_MARK, LARGE_EXTENT

    for extent, flagged in ((0.95, False), (LARGE_EXTENT + 0.2, True)):  # a tall digit within its box; part of something bigger
        field = _one_field([dict(blank=False, ink=0.2, extent=extent)], [pred(0, 0.999)])
        assert field.digits[0].flagged is flagged
        assert field.flags == ((FLAG_LARGE_MARK,) if flagged else ())


def test_a_large_mark_in_a_field_of_several_cells_is_not_flagged():
    """In a comb or a row of boxes a mark taller than its cell is a digit's long stroke (all 95
    such digits that this rule alone flagged on the development sets were right)."""
    from pipeline.assemble import LARGE_EXTENT

    field = _one_field([
        dict(blank=False, ink=0.12, extent=0.95),
        dict(blank=False, ink=0.2, extent=LARGE_EXTENT + 0.2),
    ], [pred(8, 0.999), pred(7, 0.999)])
    assert [x.flagged for x in field.digits] == [False, False]
    assert field.flags == ()


def test_a_mark_lying_largely_in_another_cell_is_flagged_crosses_cell():
    from pipeline.assemble import CROSS_LEVEL, FLAG_CROSSES_CELL

    field = _one_field([
        dict(blank=False, ink=0.12, in_other=CROSS_LEVEL / 3),  # a tail over the wall
        dict(blank=False, ink=0.12, in_other=CROSS_LEVEL + 0.1),  # a neighbour's digit reaching in
        dict(blank=True, ink=0.0, in_other=0.9),  # blank: nothing to flag
    ], [pred(6, 0.999), pred(7, 0.999), pred(None, 1.0)])
    assert [x.flagged for x in field.digits] == [False, True, False]
    assert field.flags == (FLAG_CROSSES_CELL,)


def test_a_mark_running_on_beyond_the_searched_region_is_flagged_cut_mark():
    from pipeline.assemble import FLAG_CUT_MARK, RUN_ON_LEVEL

    field = _one_field([
        dict(blank=False, ink=0.12),  # a whole digit
        dict(blank=False, ink=0.12, run_on=RUN_ON_LEVEL + 0.05),  # part of a longer mark
        dict(blank=True, ink=0.0, run_on=1.0),  # blank: nothing to flag
    ], [pred(6, 0.999), pred(7, 0.999), pred(None, 1.0)])
    assert [x.flagged for x in field.digits] == [False, True, False]
    assert field.flags == (FLAG_CUT_MARK,)


def test_a_mark_read_from_outside_the_cell_is_flagged_outside_cell():
    from pipeline.assemble import FLAG_OUTSIDE_CELL

    field = _one_field([
        dict(blank=False, ink=0.12),  # a digit of the cell's own
        dict(blank=False, ink=0.05, outside=True),  # a digit written mostly below the box
        dict(blank=True, ink=0.0, outside=True),  # blank: nothing to flag
    ], [pred(6, 0.999), pred(7, 0.999), pred(None, 1.0)])
    assert [x.flagged for x in field.digits] == [False, True, False]
    assert field.flags == (FLAG_OUTSIDE_CELL,)


def test_a_mark_in_a_cell_standing_in_printed_text_is_flagged_but_a_blank_one_is_not():
    from dataclasses import replace

    from pipeline.assemble import FLAG_IN_TEXT

    lay = make_layout([1, 1, 1])
    lay = replace(lay, fields=(replace(lay.fields[0], kind="single", in_text=True), replace(lay.fields[1], kind="single", in_text=True), lay.fields[2]))
    letter, blank, box = build(lay, [[(1, 0.999)], [(None, 1.0)], [(1, 0.999)]]).fields
    assert letter.flagged and letter.flags == (FLAG_IN_TEXT,) and letter.digits[0].flagged
    assert not blank.flagged and not box.flagged

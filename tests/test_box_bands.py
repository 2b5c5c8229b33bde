"""The band cell finder's ruling measurements (pipeline.box_bands) on drawn pages with exact truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pages import iou

from pipeline.align import align_page
from pipeline.box_bands import _ink_profile, _ruled, _segments, _weak_lattice
from pipeline.box_cells import BoxSettings
from pipeline.boxes import find_fields
from pipeline.types import Page


def _comb_with_heavy_digits(n: int = 10, cw: int = 46, ch: int = 60, t: int = 3) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A 2400x3000 page with one comb field whose cells each hold a bold, wide mark resting
    on the bottom ruling (as heavy handwriting does): smoothing along rows smears the row
    of marks and the ruling into one thick blob of the line mask."""
    img = np.full((3000, 2400), 235, np.uint8)
    x0, y0 = 300, 600
    truth = []
    for i in range(n + 1):
        cv2.line(img, (x0 + i * cw, y0), (x0 + i * cw, y0 + ch), 40, t)
    cv2.line(img, (x0, y0), (x0 + n * cw, y0), 40, t)
    cv2.line(img, (x0, y0 + ch), (x0 + n * cw, y0 + ch), 40, t)
    for i in range(n):
        cx = x0 + i * cw + cw // 2
        # a heavy digit written just above the bottom ruling, touching it here and there after blur
        cv2.putText(img, "28"[i % 2], (cx - 17, y0 + ch - 6), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 25, 6)
        truth.append((x0 + i * cw, y0, cw, ch))
    rng = np.random.default_rng(1)
    img = np.clip(img.astype(np.float32) + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    return img, truth


def test_comb_with_heavy_digits_on_its_bottom_ruling_is_found():
    img, truth = _comb_with_heavy_digits()
    layout = find_fields(align_page(Page(Path("t.png"), 0, img, None)))
    found = [c.box for f in layout.fields for c in f.cells]
    for x, y, w, h in truth:
        hit = [b for b in found if abs(b[0] - x) <= 6 and abs(b[1] - y) <= 6 and abs(b[2] - w) <= 8 and abs(b[3] - h) <= 8]
        assert hit, f"cell {(x, y, w, h)} not found; found {found}"
    assert len(found) == len(truth)


def test_ink_profile_measures_the_line_not_the_marks_on_it():
    mask = np.zeros((80, 300), np.uint8)
    mask[50:53, :] = 255  # a 3 px ruling
    for x in range(0, 300, 40):  # strokes touching it from above over 40% of the columns
        mask[35:50, x : x + 16] = 255
    y, t, share = _ink_profile(mask, 44.0, 0, 300, 12)
    assert abs(y - 51) <= 0.5 and t == 3 and share == 1.0


def test_ink_profile_keeps_each_line_of_a_double_ruling():
    mask = np.zeros((80, 300), np.uint8)
    mask[30:33, :] = 255
    mask[42:45, :] = 255
    assert abs(_ink_profile(mask, 43.0, 0, 300, 20)[0] - 43) <= 0.5
    assert abs(_ink_profile(mask, 31.0, 0, 300, 20)[0] - 31) <= 0.5


def test_ink_profile_passes_over_a_handwritten_bar_nearer_than_the_ruling():
    # a heavy "7" in a box: its top bar (75% of the width) lies nearer the smeared
    # component's centre than the box's bottom ruling (90% inked: the last columns are the
    # line-mask overhang beyond the box)
    mask = np.zeros((80, 100), np.uint8)
    mask[20:24, 10:85] = 255
    mask[60:62, 0:90] = 255
    y, t, share = _ink_profile(mask, 30.0, 0, 100, 40)
    assert abs(y - 60.5) <= 0.5 and t == 2 and share == pytest.approx(0.9)


def test_ink_profile_gives_up_on_a_faint_row():
    mask = np.zeros((80, 300), np.uint8)
    mask[40:42, :60] = 255  # 20% of the columns
    assert _ink_profile(mask, 41.0, 0, 300, 10) is None


def test_ruled_bridges_the_gaps_of_a_dashed_line_only():
    horiz = np.zeros((20, 200), np.uint8)
    for x in range(0, 200, 10):  # dashes 7 px long, gaps 3 px
        horiz[9:11, x : x + 7] = 255
    assert _ruled(horiz, 10, 0, 197) < 0.75 * 255
    assert _ruled(horiz, 10, 0, 197, bridge=4) == 255
    horiz[:, 80:120] = 0  # a real break (the gap between two boxes) stays open
    assert _ruled(horiz, 10, 0, 197, bridge=4) < 0.85 * 255


def _cov_with_walls(walls: list[int], n: int = 400, strokes: list[tuple[int, int, float]] = ()) -> np.ndarray:
    """Column coverage of a band: 2 px wall peaks at ``walls``, broad plateaus at ``strokes``."""
    cov = np.full(n, 0.05)
    for x0, x1, v in strokes:
        cov[x0:x1] = v
    for x in walls:
        cov[x : x + 2] = np.maximum(cov[x : x + 2], 0.62)  # a faint dashed wall: 62% of the band
    return cov


def test_weak_lattice_recovers_the_faint_walls_of_a_comb():
    pitch, x0 = 36, 30
    truth = [x0 + k * pitch for k in range(9)]
    cov = _cov_with_walls(truth, strokes=[(110, 118, 0.95), (250, 258, 0.93)])
    for x in (truth[0], truth[5], truth[8]):  # the few walls that reach full coverage
        cov[x : x + 2] = 0.97
    strong = [(truth[0], truth[0] + 2), (110, 118), (truth[5], truth[5] + 2), (250, 258), (truth[8], truth[8] + 2)]
    walls = _weak_lattice(strong, cov, 0, 44.0, 0, 400, BoxSettings())
    assert walls is not None
    centres = [(a + b) / 2 for a, b in walls]
    assert len(centres) == len(truth) and all(abs(c - (t + 0.5)) <= 1.5 for c, t in zip(centres, truth))


def test_weak_lattice_leaves_separate_boxes_and_strong_combs_alone():
    # separate boxes: two walls per pitch (each box's own sides, a gap between)
    left = [30 + k * 50 for k in range(7)]
    cov = _cov_with_walls(left + [x + 42 for x in left])
    strong = [(x, x + 2) for x in left[::2]]
    assert _weak_lattice(strong, cov, 0, 44.0, 0, 400, BoxSettings()) is None
    # a comb whose walls were all found already, thin strokes in every cell's middle: no half pitch
    walls = [20 + k * 44 for k in range(9)]
    cov = _cov_with_walls(walls + [w + 22 for w in walls[:-1]])
    got = _weak_lattice([(w, w + 2) for w in walls], cov, 0, 40.0, 0, 400, BoxSettings())
    assert got is None


def test_a_thin_ruling_is_not_moved_onto_a_solid_line_above_it():
    # the line mask holds a thin ruling at row 100 (a dashed box top, bridged) and, on the raw
    # ink, a solid rule lies at row 75; a soft scan made the thickness limit large (42 px)
    horiz = np.zeros((200, 800), np.uint8)
    horiz[99:102, 100:700] = 255
    horiz[74:77, 20:780] = 255
    ink = np.zeros_like(horiz)
    ink[74:77, 20:780] = 255  # the solid rule
    for x in range(100, 700, 11):
        ink[99:102, x : x + 7] = 255  # the dashed ruling, 64% inked
    segs = _segments(horiz, 50, 42.0, 8, ink)
    assert sorted(round(g.y) for g in segs) == [75, 100]


def test_ruling_pieces_either_side_of_a_heavy_stroke_are_one_line():
    # a bottom ruling cut by a bold stroke that crosses it: the line mask loses the stroke's
    # columns (too thick for a line); on the raw ink the row stays inked across the gap
    horiz = np.zeros((200, 400), np.uint8)
    horiz[149:152, 100:130] = 255
    horiz[149:152, 190:300] = 255
    ink = horiz.copy()
    ink[120:175, 130:190] = 255  # the stroke, 60 px wide, over the line
    segs = _segments(horiz, 50, 12.0, 8, ink)
    assert [(g.x0, g.x1, round(g.y)) for g in segs] == [(100, 300, 150)]
    # the same pieces with paper between them stay apart (the short one is then dropped)
    segs = _segments(horiz, 50, 12.0, 8, horiz)
    assert [(g.x0, g.x1) for g in segs] == [(190, 300)]
    # nor is the ruling joined to a thicker piece off its row (the stroke's own foot)
    off = np.zeros_like(horiz)
    off[149:152, 190:300] = 255
    off[142:150, 100:130] = 255
    segs = _segments(off, 50, 12.0, 8, np.maximum(off, ink))
    assert [(g.x0, g.x1) for g in segs] == [(190, 300)]


def test_single_box_with_a_digit_across_its_bottom_line_is_found():
    img = np.full((1600, 1200), 240, np.uint8)
    boxes = [(200, 400, 70, 80), (600, 400, 70, 80)]
    for x, y, w, h in boxes:
        cv2.rectangle(img, (x, y), (x + w, y + h), 60, 2)
    # a heavy "4"-like blob across the first box's bottom line, wider than half the box
    cv2.ellipse(img, (235, 480), (24, 18), 0, 0, 360, 20, -1)
    layout = find_fields(align_page(Page(Path("t.png"), 0, img, None)))
    found = [c.box for f in layout.fields for c in f.cells]
    for b in boxes:
        assert any(iou(b, f) > 0.8 for f in found), f"{b} not found in {found}"



def test_an_empty_comb_of_faint_walls_is_found_by_its_even_spacing():
    from pipeline.box_bands import FAINT_WALL, _empty_faint_comb, _walls

    walls = [20 + k * 44 for k in range(9)]
    cov = _cov_with_walls(walls)  # every wall at 62% of the band: none strong
    found = _walls(cov, FAINT_WALL, 10.0)
    assert _walls(cov, 0.9, 10.0) == []
    got = _empty_faint_comb(found, cov, 0, 40.0, BoxSettings())
    assert got is not None and [a for a, _ in got] == walls
    # a mark in a cell, faint or dark: not an empty comb (handwriting is left to the
    # strong-wall lattices)
    for v in (0.2, 0.5):
        marked = _cov_with_walls(walls, strokes=[(170, 176, v)])
        assert _empty_faint_comb(_walls(marked, FAINT_WALL, 10.0), marked, 0, 40.0, BoxSettings()) is None
    # uneven spacing (labels, print): not a comb
    uneven = [20, 64, 108, 170, 214, 258]
    cov = _cov_with_walls(uneven)
    assert _empty_faint_comb(_walls(cov, FAINT_WALL, 10.0), cov, 0, 40.0, BoxSettings()) is None
    # too few walls to trust the pitch
    cov = _cov_with_walls(walls[:3])
    assert _empty_faint_comb(_walls(cov, FAINT_WALL, 10.0), cov, 0, 40.0, BoxSettings()) is None

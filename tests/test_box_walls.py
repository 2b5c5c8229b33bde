"""Cell finder 3 (pipeline.box_walls): boxes found from their walls where a digit breaks a ruling."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.align import align_page
from pipeline.box_cells import BoxSettings, _Cell
from pipeline.box_walls import walled_boxes
from pipeline.boxes import find_fields
from pipeline.types import Page

BOX = (320, 400, 64, 86)  # x, y, w, h of the ruled rectangle (3 px lines centred on it)


ROW = [(320 + i * 90, 650, 64, 86) for i in range(3)]  # three empty boxes of the same form


def _page(grey: int = 150, digit: bool = True, bottom: bool = True) -> np.ndarray:
    """A label and one box ruled ``grey`` with a heavy "0" sitting on its bottom ruling
    (seed 20001 ``holdout_053``), or with no bottom ruling (``bottom`` False); below, a row
    of three empty boxes of the same size (the finders' cells that set the size looked for)."""
    img = np.full((1000, 800), 240, np.uint8)
    for bx, by, bw, bh in ROW:
        cv2.rectangle(img, (bx, by), (bx + bw, by + bh), 60, 3)
    cv2.putText(img, "Q4", (200, 455), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 30, 3)
    x, y, w, h = BOX
    if bottom:
        cv2.rectangle(img, (x, y), (x + w, y + h), grey, 3)
    else:
        cv2.polylines(img, [np.array([(x, y + h), (x, y), (x + w, y), (x + w, y + h)], np.int32)], False, grey, 3)
    if digit:
        cv2.ellipse(img, (x + 30, y + h - 5), (20, 16), 0, 0, 360, 40, 7)
    return img


def _cells(img: np.ndarray, s: BoxSettings) -> list[tuple[float, float, float, float]]:
    """Cells found on the page, less the row of empty boxes."""
    layout = find_fields(align_page(Page(Path("t.png"), 0, img, None)), s)
    return [c.box for f in layout.fields for c in f.cells if c.box[1] < ROW[0][1] - 10]


def test_a_box_whose_bottom_ruling_a_digit_breaks_is_found_from_its_walls():
    for grey in (60, 190):  # dark and faint (dropout-like) rulings
        img = _page(grey)
        assert _cells(img, BoxSettings(walled_boxes=False)) == []  # neither other finder has it
        (box,) = _cells(img, BoxSettings())
        x, y, w, h = BOX
        # the interior: inside the 3 px rulings, within 2 px at the top and sides and 4 px at
        # the bottom, where the digit's ink thickens the ruling
        assert abs(box[0] - (x + 2)) <= 2 and abs(box[1] - (y + 2)) <= 2
        assert abs(box[0] + box[2] - (x + w - 2)) <= 2 and abs(box[1] + box[3] - (y + h - 2)) <= 4


def test_no_box_without_its_bottom_ruling():
    assert _cells(_page(60, bottom=False), BoxSettings()) == []


def test_no_box_much_taller_than_the_page_s_cells():
    # the same box and digit drawn 2.5 times as tall as the other boxes (a table cell's size)
    img = _page(60, digit=False)
    x, y, w, h = BOX
    img[y - 5 : y + h + 5, x - 5 : x + w + 5] = 240
    tall = (x, 60, int(w * 2.0), int(h * 2.5))
    cv2.rectangle(img, (tall[0], tall[1]), (tall[0] + tall[2], tall[1] + tall[3]), 60, 3)
    cv2.ellipse(img, (x + 60, tall[1] + tall[3] - 10), (40, 32), 0, 0, 360, 40, 20)
    assert _cells(img, BoxSettings()) == []


def test_a_pair_of_cells_is_not_taken_for_one_box():
    # a two-cell comb, its shared wall whole, its bottom ruling broken under a heavy "0" in the
    # first cell: the first cell is found beside the second, not one box across the wall
    img = _page(60)
    x, y, w, h = BOX
    cv2.rectangle(img, (x + w, y), (x + 2 * w, y + h), 60, 3)
    boxes = sorted(_cells(img, BoxSettings()))
    assert len(boxes) == 2 and all(b[2] < 1.2 * w for b in boxes)
    assert abs(boxes[0][0] - (x + 2)) <= 2


def _walled(marks: str) -> list[tuple[int, int, int, int]]:
    """``walled_boxes`` on masks drawn directly: a 50 x 50 box ruled 3 px, holding an X
    (``marks`` "x"), one diagonal ("/") or nothing (""), beside three cells of its size found
    elsewhere."""
    ink = np.zeros((300, 400), np.float32)
    x, y, w, h = 100, 100, 50, 50
    cv2.rectangle(ink, (x - 2, y - 2), (x + w + 1, y + h + 1), 1.0, 3)
    if "x" in marks or "/" in marks:
        cv2.line(ink, (x + w, y), (x, y + h), 1.0, 3)
    if "x" in marks:
        cv2.line(ink, (x, y), (x + w, y + h), 1.0, 3)
    vert = np.zeros(ink.shape, np.uint8)
    vert[y - 3 : y + h + 3, x - 3 : x] = 255
    vert[y - 3 : y + h + 3, x + w : x + w + 3] = 255
    mask = (ink > 0.5).astype(np.uint8) * 255
    found = [_Cell(250, 20 + 60 * i, w, h, 3.0) for i in range(3)]
    return [(c.x, c.y, c.w, c.h) for c in walled_boxes(vert, ink, 0.08, mask, found, BoxSettings(), 6.0)]


def test_a_ticked_checkbox_is_not_a_digit_box():
    # an X from corner to corner breaks the box's hole as a digit does (seed 23001
    # holdout_025: "[X] Yes"), but it is a tick, not a digit; a single slanting stroke is not
    ((x, y, w, h),) = _walled("/")
    assert x == 100 and w == 50 and abs(y - 100) <= 2 and abs(h - 50) <= 3
    assert _walled("x") == []


def test_a_box_ruled_heavy_for_its_size_is_kept_only_beside_a_box_of_its_size():
    # seed 19001 holdout_040: "[5] [7]", 26 px boxes whose walls are 5 px wide in the line
    # mask (0.19 of the width, over the 0.16 allowed a lone box: a bold letter's bowl)
    x, y, w, h = 100, 100, 26, 38
    ink = np.zeros((300, 400), np.float32)
    ink[y - 4 : y, x - 5 : x + w + 5] = 1.0
    ink[y + h : y + h + 4, x - 5 : x + w + 5] = 1.0
    vert = np.zeros(ink.shape, np.uint8)
    vert[y - 4 : y + h + 4, x - 5 : x] = 255
    vert[y - 4 : y + h + 4, x + w : x + w + 5] = 255
    ink[vert > 0] = 1.0
    cv2.line(ink, (x + 16, y + 6), (x + 9, y + h - 6), 1.0, 3)  # a "1" in it
    mask = (ink > 0.5).astype(np.uint8) * 255
    elsewhere = [_Cell(300, 20 + 60 * i, w, h, 4.0) for i in range(3)]
    beside = elsewhere[:2] + [_Cell(x + 2 * w, y, w, h, 4.0)]
    assert walled_boxes(vert, ink, 0.08, mask, elsewhere, BoxSettings(), 6.0) == []
    (box,) = walled_boxes(vert, ink, 0.08, mask, beside, BoxSettings(), 6.0)
    assert abs(box.x - x) <= 1 and abs(box.w - w) <= 1


def test_an_empty_box_is_left_to_the_other_finders():
    # empty checkboxes and a large printed "O" that the hole finder refuses came back through
    # this finder (held-out seed 25001); it is for boxes with a digit in them
    assert _walled("") == []

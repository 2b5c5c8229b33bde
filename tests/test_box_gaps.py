"""Field completion (pipeline.box_gaps): cells put back inside regular rows, uneven cuts re-cut."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.align import align_page
from pipeline.box_cells import BoxSettings, _Cell
from pipeline.box_gaps import fill_gaps, fill_rows, regularise, restore_heights, split_stacked
from pipeline.boxes import find_fields
from pipeline.types import Page


def _row(n: int, x0: int = 100, y: int = 50, w: int = 40, h: int = 50, sp: int = 3) -> list[_Cell]:
    return [_Cell(x0 + i * (w + sp), y, w, h, 3.0) for i in range(n)]


def _ruled(shape: tuple[int, int], spans: list[tuple[int, int]], y_top: int = 47, y_bot: int = 101) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for x0, x1 in spans:
        m[y_top : y_top + 3, x0:x1] = 255
        m[y_bot : y_bot + 3, x0:x1] = 255
    return m


def test_a_cell_missing_inside_a_ruled_comb_is_put_back():
    row = _row(8)
    lost = row.pop(4)
    horiz = _ruled((200, 600), [(97, 100 + 8 * 43)])
    out = fill_gaps([row], horiz, np.zeros_like(horiz))
    new = out[len(row) :]
    assert len(new) == 1
    c = new[0]
    assert abs(c.x - lost.x) <= 1 and abs(c.w - lost.w) <= 1 and c.y == lost.y and c.h == lost.h


def test_two_missing_cells_are_both_put_back():
    row = _row(9)
    lost = [row.pop(3), row.pop(3)]
    horiz = _ruled((200, 600), [(97, 100 + 9 * 43)])
    new = fill_gaps([row], horiz, np.zeros_like(horiz))[len(row) :]
    assert [(c.x, c.w) for c in new] == [(d.x, d.w) for d in lost]


def test_a_gap_under_a_dashed_ruling_is_filled():
    # a dropout ruling whose dashes cover 78% of the missing cells' width (the two cells
    # around the gap fix the row, so less than the 85% asked at a row's ends is enough)
    row = _row(9)
    lost = [row.pop(3), row.pop(3)]
    horiz = _ruled((200, 600), [(97, 100 + 9 * 43)])
    for x in range(lost[0].x, lost[1].x + lost[1].w, 9):
        horiz[:, x : x + 2] = 0
    new = fill_gaps([row], horiz, np.zeros_like(horiz))[len(row) :]
    assert [(c.x, c.w) for c in new] == [(d.x, d.w) for d in lost]
    # with the rulings of a row's ends asked inside the gap too, the cells are not put back
    assert fill_gaps([row], horiz, np.zeros_like(horiz), min_ruled_gap=0.85) == row


def test_no_cell_is_put_where_no_ruling_runs():
    # two combs on one row, one pitch apart: nothing is printed between them
    row = _row(8)
    row.pop(4)
    horiz = _ruled((200, 600), [(97, 100 + 4 * 43), (100 + 5 * 43, 100 + 8 * 43)])
    assert fill_gaps([row], horiz, np.zeros_like(horiz)) == row


def test_a_gap_that_is_not_whole_cells_is_left():
    row = _row(8)
    for c in row[4:]:
        c.x += 20  # the gap is 1.5 pitches: another field, not a missing cell
    row.pop(4)
    horiz = _ruled((200, 700), [(97, 600)])
    assert fill_gaps([row], horiz, np.zeros_like(horiz)) == row


def _comb_mask(shape: tuple[int, int], n: int, x0: int = 100, w: int = 40, sp: int = 3) -> np.ndarray:
    """Ink of a comb of ``n`` cells as ``_row`` lays them out: rulings plus 3 px walls."""
    m = _ruled(shape, [(x0 - 3, x0 + n * (w + sp))])
    for i in range(n + 1):
        m[47:104, x0 - 3 + i * (w + sp) : x0 + i * (w + sp)] = 255
    return m


def test_a_comb_is_extended_over_cells_lost_at_its_ends():
    full = _row(9)
    mask = _comb_mask((200, 600), 9)
    out = fill_gaps([full[1:7]], mask, mask)
    new = sorted(out[6:], key=lambda c: c.x)
    assert [(c.x, c.w, c.y, c.h) for c in new] == [(d.x, d.w, d.y, d.h) for d in (full[0], full[7], full[8])]


def test_a_row_is_not_extended_past_its_last_wall():
    mask = _comb_mask((200, 700), 6)
    mask[47:50, 96:600] = 255  # both rulings run on (table lines), but no wall follows
    mask[101:104, 96:600] = 255
    row = _row(6)
    assert fill_gaps([row], mask, mask) == row


def test_regularise_recuts_a_merged_pair_and_an_uneven_split():
    truth = _row(8)
    merged = truth[:2] + [_Cell(truth[2].x, 50, 2 * 40 + 3, 50, 3.0)] + truth[4:]
    assert [(c.x, c.w) for c in regularise(merged)] == [(c.x, c.w) for c in truth]
    uneven = truth[:5] + [_Cell(truth[5].x, 50, 25, 50, 3.0), _Cell(truth[5].x + 28, 50, 55, 50, 3.0)] + truth[7:]
    assert [(c.x, c.w) for c in regularise(uneven)] == [(c.x, c.w) for c in truth]


def test_regularise_leaves_a_regular_row_and_a_lone_wide_box():
    row = _row(6)
    assert regularise(row) == row
    wide = row[:3] + [_Cell(row[3].x, 50, 60, 50, 3.0)]  # 1.5 cells wide: no whole number of cells
    assert regularise(wide) == wide


def _comb_with_a_filled_cell(n: int = 10, cw: int = 50, ch: int = 64, t: int = 3) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A page with one comb whose 5th cell is filled by a solid blot (a digit inked over): the
    finders reject a cell holding a solid blob (QR modules, filled squares)."""
    img = np.full((2000, 1600), 235, np.uint8)
    x0, y0 = 300, 500
    for i in range(n + 1):
        cv2.line(img, (x0 + i * cw, y0), (x0 + i * cw, y0 + ch), 40, t)
    cv2.line(img, (x0, y0), (x0 + n * cw, y0), 40, t)
    cv2.line(img, (x0, y0 + ch), (x0 + n * cw, y0 + ch), 40, t)
    for i in range(n):
        if i == 4:
            cv2.rectangle(img, (x0 + i * cw + 12, y0 + 10), (x0 + (i + 1) * cw - 12, y0 + ch - 10), 30, -1)
        else:
            cv2.putText(img, str(i), (x0 + i * cw + 14, y0 + ch - 16), cv2.FONT_HERSHEY_SIMPLEX, 1.1, 30, 3)
    rng = np.random.default_rng(2)
    img = np.clip(img.astype(np.float32) + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    return img, [(x0 + i * cw, y0, cw, ch) for i in range(n)]


def _found(img: np.ndarray, s: BoxSettings) -> list[tuple[float, float, float, float]]:
    layout = find_fields(align_page(Page(Path("t.png"), 0, img, None)), s)
    return [c.box for f in layout.fields for c in f.cells]


def _hit(found, x, y, w, h) -> bool:
    return any(abs(b[0] - x) <= 6 and abs(b[1] - y) <= 6 and abs(b[2] - w) <= 8 and abs(b[3] - h) <= 8 for b in found)


def test_a_blotted_cell_of_a_comb_is_found_through_the_row():
    img, truth = _comb_with_a_filled_cell()
    without = _found(img, BoxSettings(fill_gaps=False))
    assert not _hit(without, *truth[4])  # the finders alone lose it (else this test shows nothing)
    found = _found(img, BoxSettings())
    for box in truth:
        assert _hit(found, *box), f"cell {box} not found; found {found}"
    assert len(found) == len(truth)


def _grid_mask(shape: tuple[int, int], rows: int, n: int, x0: int = 100, y0: int = 50, w: int = 40, h: int = 50, t: int = 3) -> np.ndarray:
    """Ink of a grid of ``rows`` x ``n`` cells laid out as ``_row`` does, row after row: 3 px rulings and walls."""
    m = np.zeros(shape, np.uint8)
    x1, y1 = x0 + n * (w + t), y0 + rows * (h + t)
    for r in range(rows + 1):
        m[y0 - t + r * (h + t) : y0 + r * (h + t), x0 - t : x1] = 255
    for i in range(n + 1):
        m[y0 - t : y1, x0 - t + i * (w + t) : x0 + i * (w + t)] = 255
    return m


def _grid_row(r: int, n: int = 6, w: int = 40, h: int = 50) -> list[_Cell]:
    return _row(n, y=50 + r * (h + 3), w=w, h=h)


def _boxes(cells: list[_Cell]) -> list[tuple[int, int, int, int]]:
    return sorted((c.x, c.y, c.w, c.h) for c in cells)


def test_the_rows_of_a_grid_around_a_found_row_are_put_back():
    mask = _grid_mask((400, 500), 4, 6)
    found = _grid_row(1)
    out = fill_rows(found, [found], mask, mask)
    assert _boxes(out) == _boxes([c for r in range(4) for c in _grid_row(r)])


def test_no_row_is_added_where_rulings_run_on_without_walls():
    mask = _grid_mask((400, 500), 1, 6)
    mask[100:103, 97:400] = 255  # a table line one cell height below the comb, no walls under it
    found = _grid_row(0)
    assert fill_rows(found, [found], mask, mask) == found


def test_a_row_of_double_cells_is_not_repeated_over_single_cells():
    mask = _grid_mask((400, 700), 3, 12)
    found = [_Cell(100 + i * 86, 103, 83, 50, 3.0) for i in range(6)]  # row 1 found as pairs of cells
    assert fill_rows(found, [found], mask, mask) == found


def test_a_block_of_two_rows_gives_way_to_the_rows_inside_it():
    mask = _grid_mask((400, 500), 3, 6)
    top = _grid_row(0)
    blocks = [_Cell(c.x, 103, c.w, 103, 3.0) for c in _grid_row(1)[:3]]  # rows 1 and 2 taken as one tall cell
    rest = _grid_row(1)[3:] + _grid_row(2)[3:]
    out = fill_rows(top + blocks + rest, [top], mask, mask)
    assert _boxes(out) == _boxes([c for r in range(3) for c in _grid_row(r)])


def test_faint_walls_that_reach_only_the_line_mask_count():
    grid = _grid_mask((400, 500), 3, 6)
    rulings = np.zeros_like(grid)
    for y in (47, 100, 153, 206):
        rulings[y : y + 3] = grid[y : y + 3]
    walls = cv2.subtract(grid, rulings)  # the walls: in the vertical-line mask only, too faint for the ink mask
    found = _grid_row(0)
    assert fill_rows(found, [found], rulings, rulings) == found
    out = fill_rows(found, [found], rulings, rulings, walls)
    assert _boxes(out) == _boxes([c for r in range(3) for c in _grid_row(r)])


def test_every_other_cell_missing_is_put_back_at_the_row_spacing():
    # cells 1 and 3 of a ruled comb lost (seed-19001 holdout_007): no gap next to theirs is a
    # wall's width, so the spacing comes from the rest of the row
    full = _row(10)
    row = [c for i, c in enumerate(full) if i not in (1, 3)]
    horiz = _ruled((200, 700), [(97, 100 + 10 * 43)])
    new = fill_gaps([row], horiz, np.zeros_like(horiz))[len(row) :]
    assert sorted((c.x, c.w) for c in new) == [(full[i].x, full[i].w) for i in (1, 3)]


def test_a_row_under_broken_walls_is_put_back():
    # the second row of a grid whose walls are broken (a 14 px gap in each, wider than the
    # quarter-height closing of ``box_gaps._wall``: 71% of the middle 80% of each wall inked)
    grid = _grid_mask((400, 500), 2, 6)
    walls = np.zeros_like(grid)
    for i in range(7):
        x = 97 + i * 43
        walls[103:156, x : x + 3] = grid[103:156, x : x + 3]
    walls[133:147] = 0
    mask = grid.copy()
    mask[103:153] = 0
    mask |= walls
    found = _grid_row(0)
    out = fill_rows(found, [found], mask, mask)
    assert _boxes(out) == _boxes(_grid_row(0) + _grid_row(1))


def test_a_comb_of_which_two_cells_were_found_is_extended():
    # two neighbouring cells of a 5-cell comb found (a faint dashed grid under heavy digits,
    # seed-300 holdout_018): their width and shared wall give the pitch
    full = _row(5)
    mask = _comb_mask((200, 600), 5)
    out = fill_gaps([full[2:4]], mask, mask)
    assert _boxes(out) == _boxes(full)
    # two cells one cell apart: the cell between is put back (rulings and both walls show),
    # but their spacing is no pitch to extend the row by
    apart = [full[0], full[2]]
    assert _boxes(fill_gaps([apart], mask, mask)) == _boxes(full[:3])


def _boxes_mask(shape: tuple[int, int], cells: list[_Cell]) -> np.ndarray:
    """Ink of separate boxes, each ruled 3 px wide just outside its cell."""
    m = np.zeros(shape, np.uint8)
    for c in cells:
        cv2.rectangle(m, (c.x - 2, c.y - 2), (c.x + c.w + 1, c.y + c.h + 1), 255, 3)
    return m


def test_a_box_lost_between_separate_boxes_is_put_back():
    # boxes 40 px wide and 30 px apart (no gap a wall's width to give the spacing): the
    # narrowest space of the row is their spacing (seed 22001 holdout_003, a heavy "0" over
    # a faint box); for a pair the lost box must lie midway
    row = _row(5, sp=30)
    mask = _boxes_mask((200, 600), row)
    for found in ([row[0], row[1], row[3], row[4]], [row[1], row[3]]):
        out = fill_gaps([found], mask, mask)
        assert _boxes(out[len(found) :]) == _boxes([row[2]])
    # rulings above and below but no walls (a ruled line through the gap): nothing is added
    found = [row[0], row[1], row[3], row[4]]
    lines = _ruled((200, 600), [(95, 600)])
    assert fill_gaps([found], lines, lines) == found


def test_a_row_of_separate_boxes_is_extended_over_a_box_lost_at_its_end():
    # seed 21001 holdout_032: a pair of boxes 50 px apart found, the third (a heavy "7") not
    row = _row(3, sp=30)
    mask = _boxes_mask((200, 600), row)
    assert _boxes(fill_gaps([row[1:]], mask, mask)) == _boxes(row)
    # no box drawn there: nothing added
    short = _boxes_mask((200, 600), row[1:])
    assert fill_gaps([row[1:]], short, short) == row[1:]
    # walls too faint for the ink mask but in the vertical-line mask (seed 22001 holdout_007)
    rulings = _ruled((200, 600), [(95, 600)])
    assert fill_gaps([row[1:]], rulings, rulings) == row[1:]
    assert _boxes(fill_gaps([row[1:]], rulings, rulings, vert=mask)) == _boxes(row)
    # boxes a cell and more apart give no pitch
    wide = _row(3, sp=45)
    assert fill_gaps([wide[1:]], _boxes_mask((200, 600), wide), _boxes_mask((200, 600), wide)) == wide[1:]


def _boxes_with_a_barred_seven() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A row of 4 separate boxes (66 x 93 px, 32 px apart); box 3 holds a "7" whose bar is
    drawn straight from wall to wall a third of the way down (seed 22001 ``holdout_059``)."""
    img = np.full((1200, 1000), 235, np.uint8)
    x0, y0, w, h, gap = 200, 400, 66, 93, 32
    truth = []
    for i in range(4):
        x = x0 + i * (w + gap)
        cv2.rectangle(img, (x, y0), (x + w, y0 + h), 40, 3)
        truth.append((x, y0, w, h))
    x = x0 + 2 * (w + gap)
    cv2.line(img, (x, y0 + 31), (x + w, y0 + 31), 30, 5)
    cv2.line(img, (x + w - 12, y0 + 33), (x + 22, y0 + h - 14), 30, 6)
    cv2.putText(img, "4", (x0 + 16, y0 + h - 22), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 30, 4)
    rng = np.random.default_rng(3)
    img = np.clip(img.astype(np.float32) + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    return img, truth


def test_a_cell_cut_short_by_a_bar_drawn_wall_to_wall_is_restored():
    img, truth = _boxes_with_a_barred_seven()
    without = _found(img, BoxSettings(fill_gaps=False))
    assert not _hit(without, *truth[2])  # the finders alone cut it at the bar (else this test shows nothing)
    found = _found(img, BoxSettings())
    for box in truth:
        assert _hit(found, *box), f"cell {box} not found; found {found}"
    assert len(found) == len(truth)


def test_restore_heights_needs_the_rulings_of_the_whole_cell():
    row = _row(4, sp=30)
    short = _Cell(row[2].x, row[2].y + 18, row[2].w, row[2].h - 18, 3.0)
    cells = row[:2] + [short] + row[3:]
    horiz = _ruled((200, 600), [(97, 100 + 4 * 70)])
    out = restore_heights(cells, horiz, BoxSettings())
    assert (out[2].y, out[2].h) == (row[2].y, row[2].h)
    assert out[:2] + out[3:] == row[:2] + row[3:]
    # no top ruling over the short cell: it is left as found
    horiz[47:50, row[2].x - 2 : row[2].x + row[2].w + 2] = 0
    assert restore_heights(cells, horiz, BoxSettings()) == cells


def test_a_gap_cell_with_one_ruling_half_hidden_is_put_back():
    # a digit straying over a faint ruling leaves 60% of the top ruled over the lost cell, the
    # bottom whole: the two average over the gap's 70%, the weaker over half (GAP_RULED_EACH)
    row = _row(8)
    lost = row.pop(4)
    horiz = _ruled((200, 600), [(97, 100 + 8 * 43)])
    horiz[47:50, lost.x + 4 : lost.x + 4 + int(0.4 * lost.w)] = 0
    new = fill_gaps([row], horiz, np.zeros_like(horiz))[len(row) :]
    assert [(c.x, c.w) for c in new] == [(lost.x, lost.w)]
    # with the bottom ruling broken as well the two no longer average 70%: nothing is put back
    horiz[101:104, lost.x + 4 : lost.x + 4 + int(0.4 * lost.w)] = 0
    assert fill_gaps([row], horiz, np.zeros_like(horiz)) == row


def test_a_gap_cell_needs_half_of_each_ruling():
    row = _row(8)
    lost = row.pop(4)
    horiz = _ruled((200, 600), [(97, 100 + 8 * 43)])
    horiz[47:50, lost.x + 2 : lost.x + lost.w - 8] = 0  # top ruled over under a third, bottom whole
    assert fill_gaps([row], horiz, np.zeros_like(horiz)) == row


def test_regularise_recuts_a_merged_pair_beside_two_cells_of_a_comb():
    # three cells found: two of one size edge to edge and a third as wide as two (no three agree)
    truth = _row(4)
    merged = truth[:2] + [_Cell(truth[2].x, 50, 2 * 40 + 3, 50, 3.0)]
    assert [(c.x, c.w) for c in regularise(merged)] == [(c.x, c.w) for c in truth]
    # two of one size far apart (separate boxes) fix no pitch: the wide box is left
    apart = [_Cell(100, 50, 40, 50, 3.0), _Cell(170, 50, 40, 50, 3.0), _Cell(213, 50, 83, 50, 3.0)]
    assert regularise(apart) == apart


def test_a_cell_cut_a_seventh_short_is_restored():
    # the bowl of a "6" drawn along the bottom ruling cut the cell 7 px short of 50
    row = _row(4)
    short = _Cell(row[2].x, row[2].y, row[2].w, row[2].h - 7, 3.0)
    cells = row[:2] + [short] + row[3:]
    horiz = _ruled((200, 600), [(97, 100 + 4 * 43)])
    out = restore_heights(cells, horiz, BoxSettings())
    assert (out[2].y, out[2].h) == (row[2].y, row[2].h)
    # a cell 4 px short (under the SHORT_CELL ratio) is left as found
    short4 = _Cell(row[2].x, row[2].y, row[2].w, row[2].h - 4, 3.0)
    cells4 = row[:2] + [short4] + row[3:]
    assert restore_heights(cells4, horiz, BoxSettings()) == cells4


def test_a_row_is_extended_from_both_sides_of_a_gap_that_is_no_whole_cells():
    # seed 11001 holdout_008: two cells of one comb, a label 3.2 pitches wide, then the second
    # cell of a two-cell comb whose first (a heavy "9") was lost
    mask = _comb_mask((200, 800), 2) | _comb_mask((200, 800), 2, x0=100 + int(4.2 * 43))
    found = _row(2) + [_Cell(100 + int(4.2 * 43) + 43, 50, 40, 50, 3.0)]
    out = fill_gaps([found], mask, mask)
    assert _boxes(out[3:]) == [(100 + int(4.2 * 43), 50, 40, 50)]
    # without the comb's printed walls nothing is added in or beside the gap
    bare = _comb_mask((200, 800), 2)
    assert fill_gaps([found], bare, bare) == found


def test_a_lone_cell_is_extended_to_its_comb_neighbours():
    full = _row(3)
    mask = _comb_mask((200, 600), 3)
    assert _boxes(fill_gaps([[full[1]]], mask, mask)) == _boxes([full[1], full[2], full[0]])
    # a lone box (no rulings run on beside it): nothing is added
    box = _comb_mask((200, 600), 1, x0=full[1].x)
    assert fill_gaps([[full[1]]], box, box) == [full[1]]


def _faint_comb_ink(shape: tuple[int, int], x0: int, x1: int, level: float = 0.1, dash: int = 7, gap: int = 3) -> np.ndarray:
    # ink darkness of a comb's top and bottom rulings (rows 47-49 and 101-103) drawn as faint
    # dashes over x0..x1, on paper with a little noise
    rng = np.random.default_rng(0)
    ink = np.clip(rng.normal(0.0, 0.01, shape), 0, 1).astype(np.float32)
    for x in range(x0, x1, dash + gap):
        ink[47:50, x : min(x1, x + dash)] += level
        ink[101:104, x : min(x1, x + dash)] += level
    return ink


def test_a_gap_under_a_faint_dashed_ruling_the_line_mask_missed_is_filled_from_the_ink():
    # seed 26001 holdout_047: the line mask kept 35% of a faint dashed ruling above two lost
    # cells; along the row its smoothed ink stands clear of the paper
    row = _row(9)
    lost = [row.pop(3), row.pop(3)]
    horiz = _ruled((200, 600), [(97, lost[0].x), (lost[1].x + lost[1].w, 100 + 9 * 43)])
    ink = _faint_comb_ink(horiz.shape, 97, 100 + 9 * 43)
    assert fill_gaps([row], horiz, np.zeros_like(horiz)) == row  # the line mask alone: not ruled
    new = fill_gaps([row], horiz, np.zeros_like(horiz), ink=ink)[len(row) :]
    assert [(c.x, c.w) for c in new] == [(d.x, d.w) for d in lost]


def test_a_gap_with_no_ruling_in_the_ink_stays_empty():
    # two parts of a row with a label between them: the ink shows no ruling over the gap
    row = _row(9)
    del row[3:5]
    horiz = _ruled((200, 600), [(97, row[2].x + row[2].w + 3), (row[3].x - 3, 100 + 9 * 43)])
    ink = _faint_comb_ink(horiz.shape, 97, row[2].x + row[2].w + 3)
    ink[:, row[3].x - 3 :] = _faint_comb_ink(horiz.shape, row[3].x - 3, 100 + 9 * 43)[:, row[3].x - 3 :]
    assert fill_gaps([row], horiz, np.zeros_like(horiz), ink=ink) == row


def _stacked(cols: int, n: int = 6) -> tuple[list[_Cell], list[_Cell]]:
    """Rows 0 and 1 of a grid (``_grid_row``) as found when the ruling between them was hidden over
    the first ``cols`` columns: those columns as one block each, two rows tall; returns (blocks, the rest)."""
    top, bot = _grid_row(0, n), _grid_row(1, n)
    return [_Cell(c.x, c.y, c.w, 103, 3.0) for c in top[:cols]], top[cols:] + bot[cols:]


def test_a_column_found_as_a_block_of_two_grid_rows_is_cut_at_their_ruling():
    blocks, rest = _stacked(1)
    assert _boxes(split_stacked(blocks + rest)) == _boxes(_grid_row(0) + _grid_row(1))


def test_two_neighbouring_blocks_are_cut_one_after_the_other():
    # seed 31001 holdout_040: the two left columns of a 2-row grid, each found two rows tall
    blocks, rest = _stacked(2)
    assert _boxes(split_stacked(blocks + rest)) == _boxes(_grid_row(0) + _grid_row(1))
    assert _boxes(split_stacked(blocks + rest, passes=1)) != _boxes(_grid_row(0) + _grid_row(1))


def test_a_block_two_columns_wide_is_cut_into_four_cells():
    top = _grid_row(0)
    block = _Cell(top[0].x, top[0].y, 2 * top[0].w + 3, 103, 3.0)
    rest = top[2:] + _grid_row(1)[2:]
    assert _boxes(split_stacked([block] + rest)) == _boxes(_grid_row(0) + _grid_row(1))


def test_a_tall_box_beside_one_row_only_is_kept():
    tall = _Cell(100, 50, 40, 103, 3.0)
    row = _row(5, x0=143)  # a comb level with its top, nothing level with its bottom
    assert split_stacked([tall] + row) == [tall] + row
    far = [_Cell(c.x + 200, c.y, c.w, c.h, 3.0) for c in _grid_row(0)[1:] + _grid_row(1)[1:]]  # rows well apart from it
    assert split_stacked([tall] + far) == [tall] + far


def test_a_block_whose_cells_were_all_found_is_dropped():
    # seed 23001 holdout_052: completion had put back both cells inside a block of two rows
    top, bot = _grid_row(0), _grid_row(1)
    block = _Cell(top[1].x, top[1].y, top[1].w, 103, 3.0)
    out = split_stacked(top + bot + [block])
    assert block not in out and _boxes(out) == _boxes(top + bot)

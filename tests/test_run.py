"""pipeline.run.process_batch end to end with the shipped model: input order, fault injection
(corrupt file, a stage that raises on one page, a classifier chunk that fails), multi-page
TIFF, and pages scanned upside down."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from pages import draw_page, iou
from PIL import Image

import pipeline.run as run_mod
from pipeline.classify.checkpoint import load_checkpoint
from pipeline.config import RunSettings
from pipeline.errors import NoInputError
from pipeline.types import FormResult, PageStatus

MNIST_DIR = Path(os.environ.get("DIGITFORM_MNIST", Path(__file__).resolve().parents[2] / "shared/data/mnist"))

READ = (PageStatus.OK, PageStatus.NEEDS_REVIEW)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def model():
    return load_checkpoint(None, "cpu")  # the shipped weights


def process(paths, model, **settings) -> tuple[list[FormResult], run_mod.BatchSummary]:
    settings.setdefault("device", "cpu")
    out: list[FormResult] = []
    summary = run_mod.process_batch([Path(p) for p in paths], RunSettings(**settings), out.append, model=model)
    return out, summary


@pytest.fixture(scope="module")
def drawn() -> dict[str, np.ndarray]:
    """Three drawn pages (tests/pages.py), as (H, W) uint8 images keyed by a short name."""
    return {name: draw_page(seed=seed).image for name, seed in (("a", 0), ("c", 1), ("d", 2))}


def save_png(folder: Path, name: str, img: np.ndarray) -> Path:
    p = folder / name
    assert cv2.imwrite(str(p), img)
    return p


@pytest.fixture
def scans(tmp_path: Path, drawn) -> Path:
    """A folder with a.png, c.png, d.png (good pages)."""
    for name, img in drawn.items():
        save_png(tmp_path, f"{name}.png", img)
    return tmp_path


def names(forms: list[FormResult]) -> list[tuple[str, int]]:
    return [(f.source.name, f.page) for f in forms]


def by_name(forms: list[FormResult]) -> dict[str, FormResult]:
    return {f.source.name: f for f in forms}


def assert_read(form: FormResult) -> None:
    assert form.status in READ, form.error
    assert form.error is None
    assert form.fields, f"{form.source}: no field found on a drawn page"


# --------------------------------------------------------------------------- order


@pytest.mark.parametrize("pages_per_batch", [1, 2])
def test_pages_come_out_in_input_order(scans: Path, model, pages_per_batch):
    seen_files = []
    out: list[FormResult] = []
    settings = RunSettings(device="cpu", pages_per_batch=pages_per_batch)
    summary = run_mod.process_batch([scans], settings, out.append, model=model, on_file=lambda p, n, t: seen_files.append((p.name, n, t)))
    assert names(out) == [("a.png", 1), ("c.png", 1), ("d.png", 1)]
    assert seen_files == [("a.png", 1, 3), ("c.png", 2, 3), ("d.png", 3, 3)]
    for f in out:
        assert_read(f)
        assert (f.width, f.height) == (1700, 2200)
    assert summary.files == 3 and summary.pages == 3 and summary.failed == 0
    assert summary.ok + summary.needs_review == 3
    assert summary.digits > 0


def test_explicit_file_order_is_kept(scans: Path, model):
    out, _ = process([scans / "d.png", scans / "a.png"], model)
    assert names(out) == [("d.png", 1), ("a.png", 1)]


def test_no_input_raises(tmp_path: Path, model):
    with pytest.raises(NoInputError, match="no image files found"):
        process([tmp_path], model)


# --------------------------------------------------------------------------- fault injection


@pytest.mark.parametrize(
    "bad_bytes",
    [b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, b"", "truncated"],
    ids=["corrupt-header", "empty", "truncated"],
)
def test_corrupt_file_fails_alone(scans: Path, model, bad_bytes):
    if bad_bytes == "truncated":
        bad_bytes = (scans / "a.png").read_bytes()[:3000]
    (scans / "b.png").write_bytes(bad_bytes)
    out, summary = process([scans], model)
    assert names(out) == [("a.png", 1), ("b.png", 1), ("c.png", 1), ("d.png", 1)]
    pages = by_name(out)
    bad = pages["b.png"]
    assert bad.status is PageStatus.FAILED
    assert bad.fields == () and (bad.width, bad.height) == (0, 0)
    assert "b.png" in bad.error
    assert "\n" not in bad.error and "\r" not in bad.error
    for name in ("a.png", "c.png", "d.png"):
        assert_read(pages[name])
    assert summary.failed == 1 and summary.pages == 4
    assert len(summary.errors) == 1 and "b.png" in summary.errors[0]


def test_missing_explicit_file_gets_a_failed_row(scans: Path, model):
    out, _ = process([scans / "a.png", scans / "nope.png", scans / "c.png"], model)
    assert names(out) == [("a.png", 1), ("nope.png", 1), ("c.png", 1)]
    assert out[1].status is PageStatus.FAILED and "nope.png" in out[1].error and "not found" in out[1].error
    assert_read(out[0])
    assert_read(out[2])


def test_internal_error_in_one_page_does_not_stop_the_batch(scans: Path, model, monkeypatch):
    real = run_mod.prepare_page

    def flaky(page, **kw):
        if page.source.name == "c.png":
            raise RuntimeError("boom in box finding")
        return real(page, **kw)

    monkeypatch.setattr(run_mod, "prepare_page", flaky)
    out, summary = process([scans], model, pages_per_batch=2)
    assert names(out) == [("a.png", 1), ("c.png", 1), ("d.png", 1)]
    bad = out[1]
    assert bad.status is PageStatus.FAILED
    assert bad.error.startswith("internal error")
    assert "RuntimeError" in bad.error and "boom in box finding" in bad.error
    assert (bad.width, bad.height) == (1700, 2200)  # the page was decoded
    assert_read(out[0])
    assert_read(out[2])
    assert summary.failed == 1


def test_classifier_failing_on_one_page_falls_back_page_by_page(scans: Path, model, monkeypatch):
    real = run_mod.classify_pages
    calls: list[list[str]] = []

    def poisoned(items, predictor, threshold):
        chunk = [it.layout.aligned.page.source.name for it in items]
        calls.append(chunk)
        if "c.png" in chunk:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(items, predictor, threshold)

    monkeypatch.setattr(run_mod, "classify_pages", poisoned)
    out, summary = process([scans], model, pages_per_batch=8)
    assert calls[0] == ["a.png", "c.png", "d.png"]  # the whole chunk first
    assert sorted(calls[1:]) == [["a.png"], ["c.png"], ["d.png"]]  # then page by page
    assert names(out) == [("a.png", 1), ("c.png", 1), ("d.png", 1)]
    bad = out[1]
    assert bad.status is PageStatus.FAILED
    assert bad.error.startswith("classification failed") and "RuntimeError" in bad.error
    assert "\n" not in bad.error
    assert_read(out[0])
    assert_read(out[2])
    assert summary.failed == 1 and summary.pages == 3


def test_fallback_results_equal_chunked_results(scans: Path, model, monkeypatch):
    """Classifying pages one by one gives exactly what a shared batch gives."""
    normal, _ = process([scans], model)
    real = run_mod.classify_pages

    def fails_on_chunks(items, predictor, threshold):
        if len(items) > 1:
            raise RuntimeError("out of memory")
        return real(items, predictor, threshold)

    monkeypatch.setattr(run_mod, "classify_pages", fails_on_chunks)
    fallback, _ = process([scans], model)
    assert [[(x.value, x.confidence) for x in f.fields] for f in fallback] == [[(x.value, x.confidence) for x in f.fields] for f in normal]


# --------------------------------------------------------------------------- multi-page TIFF


def test_multipage_tiff_pages_come_out_in_order(tmp_path: Path, drawn, model):
    imgs = [drawn["a"], drawn["c"], drawn["d"]]
    frames = [Image.fromarray(a) for a in imgs]
    frames[0].save(tmp_path / "multi.tif", save_all=True, append_images=frames[1:], compression="tiff_lzw")
    for k, a in enumerate(imgs):
        save_png(tmp_path, f"single_{k}.png", a)
    out, summary = process([tmp_path / "multi.tif"] + [tmp_path / f"single_{k}.png" for k in range(3)], model)
    assert names(out)[:3] == [("multi.tif", 1), ("multi.tif", 2), ("multi.tif", 3)]
    assert summary.files == 4 and summary.pages == 6
    for k in range(3):
        tif, png = out[k], out[3 + k]
        assert_read(tif)
        # the same pixels give the same reading, whatever the container
        assert [(x.value, x.box) for x in tif.fields] == [(x.value, x.box) for x in png.fields]


# --------------------------------------------------------------------------- orientation

# Digits whose 180-degree turn looks like no digit. 0, 1 and 8 are (nearly) symmetric and
# 6 / 9 swap, so a page written with those carries no orientation signal to the classifier.
ASYMMETRIC = (2, 3, 4, 7)
CELL, LINE = 56, 2
COMBS = ((200, 250, 8, 6), (200, 450, 6, 6), (700, 650, 4, 3))  # x, y, cells, cells written


def mnist_page(images: np.ndarray, labels: np.ndarray, seed: int, digits=None) -> tuple[np.ndarray, list[list[tuple]], list[str]]:
    """A 1200 x 900 page with three combs holding MNIST test digits in ``digits`` (default ``ASYMMETRIC``).

    Returns:
        image (H, W) uint8; truth cell interiors per field (x, y, w, h source pixels);
        the value written in each field.
    """
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(np.isin(labels, ASYMMETRIC if digits is None else digits))
    img = np.full((900, 1200), 255, np.uint8)
    cv2.putText(img, "Candidate number", (200, 230), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    cells, values = [], []
    for x0, y0, n, k in COMBS:
        for j in range(n + 1):
            cv2.line(img, (x0 + j * CELL, y0), (x0 + j * CELL, y0 + CELL), 0, LINE)
        for y in (y0, y0 + CELL):
            cv2.line(img, (x0, y), (x0 + n * CELL, y), 0, LINE)
        boxes, value = [], ""
        for j in range(n):
            boxes.append((x0 + j * CELL + LINE // 2 + 1, y0 + LINE // 2 + 1, CELL - LINE - 1, CELL - LINE - 1))
            if j < k:
                i = int(rng.choice(pool))
                digit = cv2.resize(images[i], (40, 40), interpolation=cv2.INTER_LINEAR)
                region = img[y0 + 8 : y0 + 48, x0 + j * CELL + 8 : x0 + j * CELL + 48]
                np.minimum(region, 255 - digit, out=region)
                value += str(int(labels[i]))
        cells.append(boxes)
        values.append(value)
    return img, cells, values


@pytest.fixture(scope="module")
def mnist_test():
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists() and not (MNIST_DIR / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"MNIST test set not found in {MNIST_DIR} (set DIGITFORM_MNIST)")
    from pipeline.data import load_mnist

    return load_mnist(MNIST_DIR, "test")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_upside_down_page_reads_like_the_upright_one(tmp_path: Path, model, mnist_test, seed):
    img, truth, values = mnist_page(*mnist_test, seed)
    up = save_png(tmp_path, "up.png", img)
    down = save_png(tmp_path, "down.png", cv2.rotate(img, cv2.ROTATE_180))
    (upright, turned), _ = process([up, down], model)
    h, w = img.shape
    assert upright.rotation == 0
    assert turned.rotation == 180
    assert (turned.width, turned.height) == (w, h)
    # the classifier may misread a digit now and then; orientation must not change any reading
    read = "".join(f.value for f in upright.fields)
    want = "".join(values)
    assert len(read) == len(want) and sum(a == b for a, b in zip(read, want)) >= 0.9 * len(want)
    assert [f.value for f in turned.fields] == [f.value for f in upright.fields]  # upright reading order
    assert [f.name for f in turned.fields] == [f"field_{i + 1}" for i in range(len(values))]
    for fu, ft, boxes in zip(upright.fields, turned.fields, truth):
        assert len(fu.digits) == len(ft.digits) == len(boxes)
        for du, dt, box in zip(fu.digits, ft.digits, boxes):
            x, y, bw, bh = box
            turned_truth = (w - x - bw, h - y - bh, bw, bh)  # the cell in source pixels of the turned scan
            assert iou(du.cell.box, box) > 0.8
            assert iou(dt.cell.box, turned_truth) > 0.8
            assert dt.prediction.digit == du.prediction.digit
            assert dt.blank == du.blank


def test_orientation_off_reads_as_stored(tmp_path: Path, model, mnist_test):
    img, _, values = mnist_page(*mnist_test, 0)
    down = save_png(tmp_path, "down.png", cv2.rotate(img, cv2.ROTATE_180))
    (form,), _ = process([down], model, orientation=False)
    assert form.rotation == 0
    assert [f.value for f in form.fields] != values


def test_orientation_is_voted_on_vote_crops_and_digits_are_read_from_pixels(model, mnist_test, monkeypatch):
    from dataclasses import replace

    import torch

    # the swapped crops below differ from any segmentation of the page, so the check of
    # unflagged digits against their thickened-wall segmentation would replace them all
    monkeypatch.setattr(run_mod, "WALL_CHECK", False)

    from pipeline.classify.predictor import Predictor
    from pipeline.types import Page

    img, _, _ = mnist_page(*mnist_test, 0)
    it = run_mod.prepare_page(Page(Path("up.png"), 0, img, None))

    def swap(a, b):  # vote on a's own crop, read b's
        return a if a.blank else replace(a, pixels=b.pixels, vote_pixels=a.pixels)

    crops = [[swap(u, f) for u, f in zip(fu, ff)] for fu, ff in zip(it.crops, it.flipped)]
    flipped = [[swap(f, u) for u, f in zip(fu, ff)] for fu, ff in zip(it.crops, it.flipped)]
    pred = Predictor(model, torch.device("cpu"))
    (form,) = run_mod.classify_pages([run_mod._Prepared(it.layout, crops, flipped)], pred, threshold=0.5)
    assert form.rotation == 0  # the vote crops are the upright page's
    digits = [d for f in form.fields for d in f.digits]
    want = [p.digit for p in pred.predict([c for fc in crops for c in fc])]
    # each digit from its pixels (but those read again from a second segmentation of the page,
    # which knows nothing of the swap)
    first = [i for i, d in enumerate(digits) if not d.crop.reread]
    assert len(first) >= len(digits) // 2
    assert [digits[i].prediction.digit for i in first] == [want[i] for i in first]
    upright = [p.digit for p in pred.predict([c for fc in it.crops for c in fc])]
    assert [digits[i].prediction.digit for i in first] != [upright[i] for i in first]  # the pixels read were the turned crops


def test_printed_text_turns_a_page_whose_digits_look_alike_upside_down(tmp_path: Path, model, mnist_test):
    # only 0, 1 and 8: the digits give the classifier no reason to turn the page, the text does
    img, _, values = mnist_page(*mnist_test, 0, digits=[0, 1, 8])
    for i, line in enumerate(("Write one digit in each box and keep inside the lines.", "Applicants who qualify may apply by post, quoting the reference.",
                              "The office will reply within eight working days of receipt.")):
        cv2.putText(img, line, (60, 60 + 40 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.75, 20, 2, cv2.LINE_AA)
    up = save_png(tmp_path, "up.png", img)
    down = save_png(tmp_path, "down.png", cv2.rotate(img, cv2.ROTATE_180))
    (upright, turned), _ = process([up, down], model)
    assert (upright.rotation, turned.rotation) == (0, 180)
    assert [f.value for f in turned.fields] == [f.value for f in upright.fields]
    assert sum(a == b for a, b in zip("".join(f.value for f in upright.fields), "".join(values))) >= 0.9 * len("".join(values))


def _sure_where(sure, digit):
    """A predictor sure of ``digit`` for the crops where ``sure`` ((n, 28, 28) -> (n,) bool)
    holds, and unsure of a "3" (0.55) elsewhere."""

    class Predictor(_TwoPassPredictor):
        def probabilities(self, pixels):
            self.calls += 1
            p = np.full((len(pixels), 10), 0.05, np.float32)
            yes = sure(pixels)
            p[yes, digit] = 1.0
            p[~yes, 3] = 0.55
            return p / p.sum(axis=1, keepdims=True)

    return Predictor()


class _TwoPassPredictor:
    """Unsure of everything on the first pass; sure of a "7" on any later one (the re-reading)."""

    classes = tuple("0123456789")
    threshold = 0.9
    batch_size = 64

    def __init__(self):
        self.calls = 0

    def probabilities(self, pixels):
        self.calls += 1
        p = np.full((len(pixels), 10), 0.05, np.float32)
        p[:, 3] = 0.55 if self.calls == 1 else 0.0
        p[:, 7] = 0.0 if self.calls == 1 else 1.0
        return p / p.sum(axis=1, keepdims=True)


def _comb_page():
    """A blank page with a 3-cell comb: cells 60 px wide from x = 40, rulings at y = 40 and 100."""
    img = np.full((160, 260), 255, np.uint8)
    for k in range(4):
        cv2.line(img, (40 + 60 * k, 40), (40 + 60 * k, 100), 0, 2)
    cv2.line(img, (40, 40), (220, 40), 0, 2)
    cv2.line(img, (40, 100), (220, 100), 0, 2)
    return img


def _crossing_page():
    """A 3-cell comb whose middle cell holds a "2" with its heavy base drawn along the bottom
    ruling: the page's line mask takes in the base, the cell's own ruling in the raw ink
    does not, so the two segmentations differ."""
    img = _comb_page()
    cv2.ellipse(img, (128, 62), (12, 10), 0, 180, 390, 0, 3)
    cv2.line(img, (138, 68), (112, 99), 0, 3)
    cv2.line(img, (112, 99), (146, 99), 0, 5)
    return img


def test_a_flagged_digit_is_read_again_and_the_likelier_verdict_stays_flagged():
    from pipeline.assemble import FLAG_REREAD
    from pipeline.types import Page

    it = run_mod.prepare_page(Page(Path("t.png"), 0, _crossing_page(), None), orientation=False)
    pred = _TwoPassPredictor()
    (form,) = run_mod.classify_pages([it], pred, threshold=0.9)
    (field,) = form.fields
    mid = field.digits[1]
    assert pred.calls == 2  # one pass for the page, one for the second segmentations
    assert mid.prediction.digit == 7 and mid.flagged and mid.crop.reread
    assert FLAG_REREAD in field.flags and field.value == "7"


def test_a_verdict_the_second_reading_does_not_beat_is_kept():
    from pipeline.types import Page

    class Unsure(_TwoPassPredictor):
        def probabilities(self, pixels):
            self.calls += 1
            p = np.full((len(pixels), 10), 0.05, np.float32)
            p[:, 3] = 0.55 if self.calls == 1 else 0.3  # the second reading is less sure
            return p / p.sum(axis=1, keepdims=True)

    it = run_mod.prepare_page(Page(Path("t.png"), 0, _crossing_page(), None), orientation=False)
    (form,) = run_mod.classify_pages([it], Unsure(), threshold=0.9)
    mid = form.fields[0].digits[1]
    assert mid.prediction.digit == 3 and mid.flagged and not mid.crop.reread


def _running_in_page():
    """A 3-cell comb whose middle cell holds a "1" and the end of a stroke of the right
    cell, which runs in over the shared wall from beyond the region searched around the
    middle cell (0.3 cell sides)."""
    img = _comb_page()
    cv2.line(img, (128, 52), (128, 88), 0, 3)
    cv2.line(img, (138, 84), (196, 93), 0, 3)
    return img


def test_a_neighbours_stroke_running_in_is_left_out_when_the_cell_is_read_again():
    from pipeline.types import Page

    it = run_mod.prepare_page(Page(Path("t.png"), 0, _running_in_page(), None), orientation=False)
    no_ink_on_the_right = _sure_where(lambda px: (px[:, :, 18:] > 0.3).sum(axis=(1, 2)) == 0, 1)
    (form,) = run_mod.classify_pages([it], no_ink_on_the_right, threshold=0.9)
    mid = form.fields[0].digits[1]
    assert mid.prediction.digit == 1 and mid.flagged and mid.crop.reread
    # the first reading kept the stroke's end: without the re-reading the cell reads "3"
    assert (it.crops[0][1].pixels[:, 18:] > 0.3).sum() > 0


def test_a_flagged_digit_is_also_read_from_a_wider_search_region():
    from pipeline.segment import SegmentSettings, segment_cell
    from pipeline.types import Page

    img = _comb_page()
    # the middle cell's "7": its bar runs out over the right wall and ends just beyond the
    # region searched around the cell (0.3 cell sides), so the first reading cuts it at the wall
    cv2.line(img, (118, 55), (176, 72), 0, 3)
    cv2.line(img, (118, 55), (118, 90), 0, 3)
    it = run_mod.prepare_page(Page(Path("t.png"), 0, img, None), orientation=False)
    cell = it.layout.fields[0].cells[1]
    wide = segment_cell(it.layout, cell, settings=SegmentSettings(margin=run_mod.REREAD_MARGIN))
    assert it.crops[0][1].in_other < 0.05 and wide.in_other > 0.1  # only the wide one keeps the bar's end

    the_wide_reading = _sure_where(lambda px: np.array([np.array_equal(x, wide.pixels) for x in px]), 7)
    (form,) = run_mod.classify_pages([it], the_wide_reading, threshold=0.9)
    mid = form.fields[0].digits[1]
    assert mid.prediction.digit == 7 and mid.flagged and mid.crop.reread
    assert np.array_equal(mid.crop.pixels, wide.pixels)


def _two_readings(second, first_digit, first_conf, second_digit, second_conf):
    """A predictor reading ``second_digit`` at ``second_conf`` for the crop ``second`` ((28, 28))
    and ``first_digit`` at ``first_conf`` for any other; the rest of each row spread evenly."""

    class Predictor(_TwoPassPredictor):
        def probabilities(self, pixels):
            self.calls += 1
            is_second = np.array([np.array_equal(x, second) for x in pixels])
            digit = np.where(is_second, second_digit, first_digit)
            conf = np.where(is_second, second_conf, first_conf)
            p = np.repeat(((1.0 - conf) / 9.0)[:, None], 10, axis=1).astype(np.float32)
            p[np.arange(len(pixels)), digit] = conf
            return p

    return Predictor()


def _base_on_ruling():
    """The "2" of ``_crossing_page``, its first crop and its crop with strokes on thickened rulings kept."""
    from pipeline.segment import SegmentSettings, segment_cell
    from pipeline.types import Page

    it = run_mod.prepare_page(Page(Path("t.png"), 0, _crossing_page(), None), orientation=False)
    cell = it.layout.fields[0].cells[1]
    kept = segment_cell(it.layout, cell, settings=SegmentSettings(wall_strokes=True, rule_strokes=True))
    return it, it.crops[0][1], kept


def test_an_unflagged_digit_is_read_again_with_its_base_on_the_bottom_ruling():
    # seed 22000 sample_055: a "2" whose base lies on its bottom ruling lost the base with the
    # ruling and was read "7" at 0.99, unflagged; read with the ruling's thickened stretch kept
    it, first, kept = _base_on_ruling()
    # the base comes back only with rule_strokes: the crop differs in its bottom rows
    assert np.abs(kept.pixels - first.pixels)[18:].max() > 0.5
    (form,) = run_mod.classify_pages([it], _two_readings(kept.pixels, 7, 0.97, 2, 0.99), threshold=0.9)
    mid = form.fields[0].digits[1]
    assert mid.prediction.digit == 2 and mid.flagged and mid.crop.reread
    assert form.fields[0].value == "2"


def test_a_digit_a_confident_second_reading_contradicts_is_flagged_readings_differ():
    from pipeline.assemble import FLAG_READINGS_DIFFER

    it, first, kept = _base_on_ruling()
    (form,) = run_mod.classify_pages([it], _two_readings(kept.pixels, 7, 0.99, 2, run_mod.DISPUTE_LEVEL + 0.02), threshold=0.9)
    mid = form.fields[0].digits[1]
    # the second reading is less confident: the first verdict stands, flagged
    assert mid.prediction.digit == 7 and mid.flagged and mid.crop.disputed and not mid.crop.reread
    assert FLAG_READINGS_DIFFER in form.fields[0].flags
    # a doubtful second reading does not dispute it
    it, first, kept = _base_on_ruling()
    (form,) = run_mod.classify_pages([it], _two_readings(kept.pixels, 7, 0.99, 2, run_mod.DISPUTE_LEVEL - 0.2), threshold=0.9)
    mid = form.fields[0].digits[1]
    assert mid.prediction.digit == 7 and not mid.flagged and not mid.crop.disputed

"""``digitform predict`` and ``pipeline.single``: single-digit images of any size, either polarity,
with or without a box, -> one JSON line each; blank, corrupt and folder inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from digit_images import HAVE_MNIST, MNIST_DIR, pick, render_digit
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from typer.testing import CliRunner

from cli import app
from pipeline.classify.checkpoint import load_checkpoint
from pipeline.data import load_mnist
from pipeline.errors import ExitCode
from pipeline.single import normalise_digit_image

needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST IDX files not found in {MNIST_DIR} (set DIGITFORM_MNIST)")
KEYS = {"source", "page", "digit", "confidence", "alternatives", "flagged", "blank"}


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def mnist_test():
    if not HAVE_MNIST:
        pytest.skip("MNIST not available")
    return load_mnist(MNIST_DIR, "test")


# (size, dark_on_light, border, pad, aspect): a spread of what users upload
VARIANTS = [
    (28, True, False, 0.2, 1.0),
    (90, True, True, 0.25, 1.0),
    (60, False, True, 0.3, 1.0),
    (150, True, False, 0.0, 0.8),  # tight crop, no margin
    (45, False, False, 0.15, 1.0),
    (120, True, True, 0.05, 1.0),  # box close to the digit
]


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, mnist_test) -> tuple[Path, list[int]]:
    images, labels = mnist_test
    folder = tmp_path_factory.mktemp("digits")
    truth = []
    for k, i in enumerate(pick(labels, 3, skip=5)):
        size, dark, border, pad, aspect = VARIANTS[k % len(VARIANTS)]
        img = render_digit(images[i], size, dark_on_light=dark, border=border, pad=pad, aspect=aspect)
        assert cv2.imwrite(str(folder / f"img_{k:02d}.png"), img)
        truth.append(int(labels[i]))
    return folder, truth


# --------------------------------------------------------------------------- normalise_digit_image


@needs_mnist
def test_normalise_is_polarity_and_frame_invariant(mnist_test):
    images, labels = mnist_test
    for i in pick(labels, 1):
        plain = normalise_digit_image(render_digit(images[i], 80, pad=0.25))
        assert plain.shape == (28, 28) and plain.dtype == np.float32
        inverted = normalise_digit_image(255 - render_digit(images[i], 80, pad=0.25))
        boxed = normalise_digit_image(render_digit(images[i], 80, pad=0.25, border=True))
        light_boxed = normalise_digit_image(render_digit(images[i], 80, pad=0.25, border=True, dark_on_light=False))
        assert np.abs(plain - inverted).mean() < 0.02
        assert np.abs(plain - boxed).mean() < 0.03, f"digit {labels[i]}: box not removed"
        assert np.abs(plain - light_boxed).mean() < 0.03
        # MNIST's own 28x28 images come back nearly as they are
        assert np.abs(normalise_digit_image(images[i]) - images[i] / 255.0).mean() < 0.05


@needs_mnist
def test_tight_crop_keeps_straight_strokes(mnist_test):
    """The bar of a tightly cropped 7 and the stem of a 1 touch the image edges like a box line
    would; they must not be removed."""
    images, labels = mnist_test
    for d in (1, 7, 4, 5):
        for i in np.nonzero(labels == d)[0][:5]:
            tight = normalise_digit_image(render_digit(images[i], 100, pad=0.0))
            loose = normalise_digit_image(render_digit(images[i], 100, pad=0.3))
            assert np.abs(tight - loose).mean() < 0.03, f"digit {d} (test index {i}) changed by a tight crop"


@needs_mnist
def test_bold_tight_crop_keeps_its_polarity(mnist_test):
    """A marker-drawn digit cropped to its ink covers more than half the image; the paper
    level must still come from the border, not from the image median."""
    images, labels = mnist_test
    for i in pick(labels, 1):
        big = cv2.dilate(cv2.resize(images[i], (100, 100)), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
        ys, xs = np.nonzero(big > 60)
        tight = 255 - big[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        padded = np.pad(tight, 25, constant_values=255)
        assert np.abs(normalise_digit_image(tight) - normalise_digit_image(padded)).mean() < 0.03


@needs_mnist
def test_slanted_box_is_removed(mnist_test):
    images, labels = mnist_test
    for i in pick(labels, 1):
        img = render_digit(images[i], 80, pad=0.3, border=True)
        h, w = img.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0, 1.0)
        slanted = cv2.warpAffine(img, m, (w, h), borderValue=245)
        straight = cv2.warpAffine(render_digit(images[i], 80, pad=0.3), m, (w, h), borderValue=245)
        assert np.abs(normalise_digit_image(slanted) - normalise_digit_image(straight)).mean() < 0.05


def test_blank_and_uniform_images_give_zeros():
    rng = np.random.default_rng(0)
    for img in (np.full((40, 30), 255, np.uint8), np.zeros((28, 28), np.uint8),
                np.clip(230 + rng.normal(0, 3, (64, 64)), 0, 255).astype(np.uint8)):
        out = normalise_digit_image(img)
        assert out.shape == (28, 28) and not out.any()
    # a box with nothing in it is blank too
    boxed = np.full((60, 60), 250, np.uint8)
    cv2.rectangle(boxed, (4, 4), (55, 55), 0, 2)
    assert not normalise_digit_image(boxed).any()


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 70), st.integers(1, 70))))
def test_normalise_always_gives_a_crop(img):
    out = normalise_digit_image(img)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


# --------------------------------------------------------------------------- digitform predict


@needs_mnist
def test_predict_reads_digits_in_both_polarities_with_and_without_box(digit_files):
    folder, truth = digit_files
    files = sorted(folder.glob("*.png"))
    r = invoke("predict", *files, "--device", "cpu")
    assert r.exit_code == ExitCode.OK, r.stderr
    out = lines(r)
    threshold = load_checkpoint(None).threshold
    assert len(out) == len(files) == 30
    assert [o["source"] for o in out] == [str(f) for f in files]
    for o in out:
        assert KEYS <= set(o)
        assert o["page"] == 1 and o["blank"] is False
        assert 0.0 <= o["confidence"] <= 1.0
        assert len(o["alternatives"]) == 2 and all(len(a) == 2 for a in o["alternatives"])
        if abs(o["confidence"] - threshold) > 1e-4:  # confidences are rounded to 4 decimals
            assert o["flagged"] == (o["confidence"] < threshold)
    right = sum(o["digit"] == str(t) for o, t in zip(out, truth))
    assert right >= 27, [(o["digit"], t) for o, t in zip(out, truth)]


@needs_mnist
def test_predict_folder_blank_and_corrupt_file(digit_files, tmp_path: Path):
    folder, truth = digit_files
    mixed = tmp_path / "mixed"
    (mixed / "sub").mkdir(parents=True)
    for k in (0, 1, 2):
        (mixed / "sub" / f"img_{k:02d}.png").write_bytes((folder / f"img_{k:02d}.png").read_bytes())
    assert cv2.imwrite(str(mixed / "blank.png"), np.full((50, 50), 255, np.uint8))
    (mixed / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    r = invoke("predict", mixed, "--device", "cpu", "--min-confidence", "0.5")
    assert r.exit_code == ExitCode.PAGES_FAILED, r.stderr
    out = {Path(o["source"]).name: o for o in lines(r)}
    assert set(out) == {"blank.png", "corrupt.png", "img_00.png", "img_01.png", "img_02.png"}
    assert out["blank.png"]["digit"] is None and out["blank.png"]["flagged"] is True and out["blank.png"]["blank"] is True
    assert "error" in out["corrupt.png"] and "corrupt.png" in out["corrupt.png"]["error"]
    assert out["corrupt.png"]["digit"] is None and out["corrupt.png"]["flagged"] is True
    for k in (0, 1, 2):
        assert out[f"img_{k:02d}.png"]["digit"] == str(truth[k]) and "error" not in out[f"img_{k:02d}.png"]


def test_predict_blank_only_exits_ok(tmp_path: Path):
    f = tmp_path / "white.png"
    assert cv2.imwrite(str(f), np.full((32, 32), 255, np.uint8))
    r = invoke("predict", f, "--device", "cpu")
    assert r.exit_code == ExitCode.OK, r.stderr
    (o,) = lines(r)
    assert o["digit"] is None and o["flagged"] is True and o["confidence"] == 0.0 and o["alternatives"] == []


def test_predict_usage_errors(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("predict", empty).exit_code == ExitCode.NO_INPUT
    f = tmp_path / "white.png"
    assert cv2.imwrite(str(f), np.full((32, 32), 255, np.uint8))
    assert invoke("predict", f, "--min-confidence", "1.5").exit_code == ExitCode.CONFIG
    assert invoke("predict", f, "--model", tmp_path / "nope.pt").exit_code == ExitCode.MODEL

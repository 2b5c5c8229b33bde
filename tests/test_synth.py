"""pipeline.synth: synthetic forms are deterministic, decodable, and their truth is exact and in the saved frame."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from pipeline.errors import ConfigError
from pipeline.score import load_truth, score_pages
from pipeline.synth import STYLES, _box, _turn, generate_forms


def _mnist_dir() -> Path:
    env = os.environ.get("DIGITFORM_MNIST")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared/data/mnist"


@pytest.fixture(scope="module")
def mnist() -> Path:
    d = _mnist_dir()
    if not any((d / n).exists() for n in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")):
        pytest.skip(f"MNIST test files not found in {d} (set DIGITFORM_MNIST to their folder)")
    return d


@pytest.fixture(scope="module")
def sample4(mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_forms(tmp_path_factory.mktemp("sample4"), 4, seed=11, mnist_dir=mnist, style="sample")


@pytest.fixture(scope="module")
def holdout2(mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_forms(tmp_path_factory.mktemp("holdout2"), 2, seed=11, mnist_dir=mnist, style="holdout")


def _frames(path: Path) -> list[Image.Image]:
    with Image.open(path) as im:
        return [f.convert("L") for f in ImageSequence.Iterator(im)]


@pytest.mark.parametrize("which", ["sample4", "holdout2"])
def test_truth_is_well_formed_and_matches_the_files(which: str, request: pytest.FixtureRequest) -> None:
    truth_path: Path = request.getfixturevalue(which)
    doc = json.loads(truth_path.read_text())
    assert doc["schema_version"] == 1
    assert doc["generator"]["count"] == len(doc["pages"])
    for p in doc["pages"]:
        frames = _frames(truth_path.parent / p["source"])
        img = frames[p["page"] - 1]
        assert img.size == (p["width"], p["height"])
        assert p["rotation"] in (0, 180) and abs(p["skew"]) <= 3.0
        assert p["fields"], "every page has digit fields"
        for i, f in enumerate(p["fields"]):
            assert f["name"] == f"field_{i + 1}"
            assert f["value"] == "".join(d["digit"] for d in f["digits"] if d["digit"] is not None)
            fx, fy, fw, fh = f["box"]
            for d in f["digits"]:
                x, y, w, h = d["box"]
                assert w > 0 and h > 0
                assert x >= 0 and y >= 0 and x + w <= p["width"] and y + h <= p["height"]
                assert fx - 0.05 <= x and fy - 0.05 <= y and x + w <= fx + fw + 0.05 and y + h <= fy + fh + 0.05
                assert d["blank"] == (d["digit"] is None)
                assert d["digit"] is None or d["digit"] in "0123456789" and len(d["digit"]) == 1


def test_sample_style_writes_a_two_page_tiff_and_every_format(sample4: Path) -> None:
    doc = json.loads(sample4.read_text())
    sources = [p["source"] for p in doc["pages"]]
    tif = sources[-1]
    assert tif.endswith(".tif") and sources[-2] == tif
    assert [p["page"] for p in doc["pages"]][-2:] == [1, 2]
    assert len(_frames(sample4.parent / tif)) == 2
    assert {Path(s).suffix for s in sources} == {".png", ".jpg", ".tif"}
    for s in set(sources):
        assert (sample4.parent / s).stat().st_size < 300_000


def test_same_seed_same_bytes_other_seed_other_forms(mnist: Path, tmp_path: Path) -> None:
    a = generate_forms(tmp_path / "a", 2, seed=5, mnist_dir=mnist)
    b = generate_forms(tmp_path / "b", 2, seed=5, mnist_dir=mnist)
    c = generate_forms(tmp_path / "c", 2, seed=6, mnist_dir=mnist)
    assert a.read_text() == b.read_text()
    for p in sorted(a.parent.iterdir()):
        assert p.read_bytes() == (b.parent / p.name).read_bytes(), p.name
    assert json.loads(a.read_text())["pages"] != json.loads(c.read_text())["pages"]


def test_styles_draw_disjoint_mnist_test_images(sample4: Path, holdout2: Path) -> None:
    def used(path: Path) -> set[int]:
        return {i for n in json.loads(path.read_text())["generator"]["pages"] for i in n["mnist_indices"]}

    s, h = used(sample4), used(holdout2)
    assert s and h and not s & h
    assert all(i % 2 == STYLES["sample"].parity for i in s)
    assert all(i % 2 == STYLES["holdout"].parity for i in h)


def test_styles_differ_in_layout_ranges() -> None:
    s, h = STYLES["sample"], STYLES["holdout"]
    assert s.fonts != h.fonts and s.aspect != h.aspect and s.dpi != h.dpi and s.skew < h.skew


@pytest.mark.parametrize(("angle", "rotation"), [(0.0, 0), (0.0, 180), (2.5, 0), (-3.0, 180)])
def test_truth_boxes_follow_the_ink_after_skew_and_turn(angle: float, rotation: int) -> None:
    img = np.full((300, 400), 255, np.uint8)
    img[50:120, 100:160] = 0
    out, a = _turn(img, angle, rotation)
    ys, xs = np.nonzero(out < 128)
    ink = [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
    assert np.allclose(_box(a, (100, 50, 160, 120), 400, 300), ink, atol=1.0)


def test_truth_scored_against_itself_is_perfect(sample4: Path) -> None:
    pages = load_truth(sample4)
    s = score_pages(pages, pages)
    assert s["cell_recall"] == s["cell_precision"] == s["digit_accuracy"] == 1.0
    assert s["fields_exact"] == s["fields_truth"] > 0


def test_bad_arguments_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown synth style"):
        generate_forms(tmp_path, 1, seed=0, mnist_dir=tmp_path, style="fancy")
    with pytest.raises(ConfigError, match="count must be"):
        generate_forms(tmp_path, 0, seed=0, mnist_dir=tmp_path)
    with pytest.raises(ConfigError, match="t10k-images"):
        generate_forms(tmp_path, 1, seed=0, mnist_dir=tmp_path)


def test_training_forms_use_only_the_digits_training_trained_on(mnist: Path, tmp_path: Path) -> None:
    from pipeline.data import load_mnist, validation_split

    if not any((mnist / n).exists() for n in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")):
        pytest.skip(f"MNIST training files not found in {mnist}")
    doc = json.loads(generate_forms(tmp_path, 2, seed=3, mnist_dir=mnist, style="sample", split="train").read_text())
    assert doc["generator"]["mnist_split"] == "train"
    used = [i for p in doc["generator"]["pages"] for i in p["mnist_indices"]]
    images, labels = load_mnist(mnist, "train")
    _, held_out = validation_split(len(images))
    assert used and not set(used) & set(held_out.tolist())
    assert all(i % 2 == 0 for i in used)  # the sample style's parity
    # the truth digits are the training labels of those images
    digits = [d["digit"] for p in doc["pages"] for f in p["fields"] for d in f["digits"] if d["digit"] is not None]
    assert sorted(digits) == sorted(str(labels[i]) for i in used)


def test_unknown_mnist_split_is_a_config_error(mnist: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        generate_forms(tmp_path, 1, seed=0, mnist_dir=mnist, split="validation")


def test_ink_kept_measures_the_strokes_the_scan_left() -> None:
    from pipeline.synth import ink_kept

    grey = np.full((60, 80), 180.0, np.float32)  # paper darkened by uneven lighting
    grey[20:40, 30:33] = 180 * 60 / 255 + 10  # a pen of grey 60 under the same lighting, a little noise
    core = np.stack(np.meshgrid(np.arange(30, 33) + 0.5, np.arange(20, 40) + 0.5), -1).reshape(-1, 2)
    eye = np.eye(3)
    cell = [20.0, 10.0, 30.0, 40.0]
    assert ink_kept(grey, eye, core, cell, 60.0) == 1.0
    grey[30:40, 30:33] = 170.0  # lower half of the stroke lost (a 1-bit threshold above a faint pen)
    assert ink_kept(grey, eye, core, cell, 60.0) == pytest.approx(0.5)
    shift = np.array([[1.0, 0, 100], [0, 1, 0], [0, 0, 1]])  # mapped off the page: nothing kept
    assert ink_kept(grey, shift, core, cell, 60.0) == 0.0
    assert ink_kept(grey, eye, core[:0], cell, 60.0) == 0.0


@pytest.mark.parametrize("which", ["sample4", "holdout2"])
def test_written_digits_carry_ink_kept(which: str, request: pytest.FixtureRequest) -> None:
    doc = json.loads(request.getfixturevalue(which).read_text())
    cells = [d for p in doc["pages"] for f in p["fields"] for d in f["digits"]]
    kept = [d["ink_kept"] for d in cells if d["digit"] is not None]
    outside = [d["ink_outside"] for d in cells if d["digit"] is not None]
    assert all(0.0 <= o <= 1.0 for o in outside) and float(np.median(outside)) < 0.05  # most digits stay inside their cell
    assert kept and len(kept) == sum(d["digit"] is not None for d in cells)
    assert not any("ink_kept" in d or "ink_outside" in d for d in cells if d["digit"] is None)
    assert all(0.0 <= k <= 1.0 for k in kept)
    assert float(np.median(kept)) > 0.8  # most digits come through the scan readable


def test_ink_outside_is_the_share_of_the_stroke_core_beyond_the_cell() -> None:
    from pipeline.synth import ink_outside

    core = np.stack(np.meshgrid(np.arange(10, 20) + 0.5, np.arange(10, 30) + 0.5), -1).reshape(-1, 2)  # x 10-19, y 10-29
    assert ink_outside(core, (0, 0, 40, 40)) == 0.0
    assert ink_outside(core, (0, 0, 40, 20)) == pytest.approx(0.5)  # the lower half below the cell
    assert ink_outside(core, (15, 0, 40, 40)) == pytest.approx(0.5)  # the left half beyond the left wall
    assert ink_outside(core[:0], (0, 0, 40, 40)) == 0.0

"""pipeline.io: finding scans and decoding them to grey pages; bad input gives one-line InputErrors."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline import io
from pipeline.errors import InputError, NoInputError
from pipeline.io import DEFAULT_MAX_PIXELS, find_scans, read_pages

# --------------------------------------------------------------------------- helpers


def _ink_square(size: tuple[int, int] = (60, 40)) -> np.ndarray:
    """(H, W) uint8 paper with a black 10x10 square at x, y = 10..19."""
    w, h = size
    a = np.full((h, w), 255, np.uint8)
    a[10:20, 10:20] = 0
    return a


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny 8-bit grey PNG whose header claims ``width`` x ``height`` (pixel data is short)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _one(path: Path, **kw) -> io.Page:
    pages = list(read_pages(path, **kw))
    assert len(pages) == 1
    return pages[0]


def _assert_page(page, source: Path, shape: tuple[int, int]) -> None:
    assert page.source == source
    assert page.image.dtype == np.uint8
    assert page.image.shape == shape
    assert page.image.flags.c_contiguous


def _assert_one_line(err: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(err.value)
    assert "\n" not in msg and "\r" not in msg
    assert path.name in msg
    assert "\n" not in err.value.one_line()


# --------------------------------------------------------------------------- decoding


def test_png_grey(tmp_path: Path) -> None:
    p = tmp_path / "grey.png"
    Image.fromarray(_ink_square()).save(p, dpi=(300, 300))
    page = _one(p)
    _assert_page(page, p, (40, 60))
    np.testing.assert_array_equal(page.image, _ink_square())
    assert page.index == 0 and page.number == 1
    assert page.size == (60, 40)
    assert page.dpi == pytest.approx((300.0, 300.0), abs=0.01)
    assert all(isinstance(v, float) for v in page.dpi)


def test_jpeg_rgb(tmp_path: Path) -> None:
    rgb = np.stack([_ink_square()] * 3, axis=-1)
    p = tmp_path / "colour.JPG"  # suffix case does not matter
    Image.fromarray(rgb, "RGB").save(p, quality=95, dpi=(200, 150))
    page = _one(p)
    _assert_page(page, p, (40, 60))
    assert page.image[15, 15] < 40 and page.image[30, 40] > 215  # lossy, but ink stays ink
    assert page.dpi == pytest.approx((200.0, 150.0))


def test_bmp(tmp_path: Path) -> None:
    p = tmp_path / "scan.bmp"
    Image.fromarray(_ink_square()).save(p)
    page = _one(p)
    np.testing.assert_array_equal(page.image, _ink_square())


def test_no_dpi_tag_is_none(tmp_path: Path) -> None:
    p = tmp_path / "nodpi.png"
    Image.fromarray(_ink_square()).save(p)
    assert _one(p).dpi is None


def test_rgba_transparent_background_is_paper(tmp_path: Path) -> None:
    rgba = np.zeros((40, 60, 4), np.uint8)  # fully transparent black everywhere ...
    rgba[10:20, 10:20] = (0, 0, 0, 255)  # ... but an opaque black square
    rgba[25:30, 25:30] = (0, 0, 0, 128)  # and a half-transparent one
    p = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(p)
    img = _one(p).image
    assert img[0, 0] == 255 and img[35, 55] == 255
    assert img[15, 15] == 0
    assert 120 <= img[27, 27] <= 135


def test_la_and_palette_with_transparency(tmp_path: Path) -> None:
    la = np.zeros((10, 10, 2), np.uint8)
    la[..., 1] = 0
    la[2:4, 2:4] = (0, 255)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img = _one(tmp_path / "la.png").image
    assert img[0, 0] == 255 and img[3, 3] == 0

    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    pal.paste(1, (5, 5, 10, 10))
    pal.save(tmp_path / "pal.png", transparency=0)
    img = _one(tmp_path / "pal.png").image
    assert img[0, 0] == 255  # palette index 0 is black but transparent -> paper
    assert img[7, 7] == 255

    pal.save(tmp_path / "pal_opaque.png")
    img = _one(tmp_path / "pal_opaque.png").image
    assert img[0, 0] == 0 and img[7, 7] == 255


def test_group4_tiff_one_bit(tmp_path: Path) -> None:
    p = tmp_path / "fax.tif"
    Image.fromarray(_ink_square()).convert("1").save(p, compression="group4", dpi=(300, 300))
    with Image.open(p) as im:
        assert im.mode == "1" and im.info["compression"] == "group4"
    page = _one(p)
    np.testing.assert_array_equal(page.image, _ink_square())
    assert page.dpi == pytest.approx((300.0, 300.0))


def test_multipage_tiff(tmp_path: Path) -> None:
    p = tmp_path / "multi.tiff"
    frames = [Image.new("L", (30 + k, 20), 60 * k) for k in range(3)]
    frames[0].save(p, save_all=True, append_images=frames[1:], dpi=(150, 150))
    pages = list(read_pages(p))
    assert [pg.index for pg in pages] == [0, 1, 2]
    assert [pg.number for pg in pages] == [1, 2, 3]
    assert [pg.size for pg in pages] == [(30, 20), (31, 20), (32, 20)]
    assert [int(pg.image[0, 0]) for pg in pages] == [0, 60, 120]
    assert all(pg.source == p for pg in pages)


def test_png_16_bit_scaled(tmp_path: Path) -> None:
    a = np.array([[0, 257, 32896, 65535]], np.uint16)
    p = tmp_path / "deep.png"
    Image.fromarray(a).save(p)
    with Image.open(p) as im:
        assert im.mode.startswith("I")
    np.testing.assert_array_equal(_one(p).image, [[0, 1, 128, 255]])


def test_cmyk_and_32_bit_modes(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 0, 0, 255)).save(tmp_path / "cmyk.tif")
    assert _one(tmp_path / "cmyk.tif").image.max() < 10  # K = 100 % -> black ink

    ints = Image.fromarray(np.array([[0, 65535]], np.int32), "I")
    ints.save(tmp_path / "ints.tif")
    np.testing.assert_array_equal(_one(tmp_path / "ints.tif").image, [[0, 255]])


def test_exif_orientation_is_ignored(tmp_path: Path) -> None:
    img = Image.fromarray(_ink_square())
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rotated.jpg"
    img.save(p, exif=exif, quality=95)
    page = _one(p)
    assert page.image.shape == (40, 60)  # as stored, not as displayed


# --------------------------------------------------------------------------- find_scans


def test_find_scans_order_recursion_hidden(tmp_path: Path) -> None:
    root = tmp_path / "scans"
    (root / "b").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    for rel in ["b/2.png", "a.TIF", "b/1.jpeg", "c.bmp", ".hidden.png", ".hidden_dir/x.png", "notes.txt", "d.JPG"]:
        (root / rel).write_bytes(b"x")
    other = tmp_path / "other.png"
    other.write_bytes(b"x")
    unknown = tmp_path / "explicit.xyz"
    missing = tmp_path / "missing.png"

    found = find_scans([other, root, unknown, missing, root / "c.bmp", other])
    rel = [str(p.relative_to(tmp_path)) if p.is_relative_to(tmp_path) else str(p) for p in found]
    assert rel == [
        "other.png",
        "scans/a.TIF",
        "scans/b/1.jpeg",
        "scans/b/2.png",
        "scans/c.bmp",
        "scans/d.JPG",
        "explicit.xyz",  # named explicitly: kept despite its suffix ...
        "missing.png",  # ... and despite not existing (fails later, visibly)
    ]


def test_find_scans_dedupes_equivalent_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert find_scans([Path("a.png"), Path("./a.png"), tmp_path / "a.png", Path(".")]) == [Path("a.png")]


def test_find_scans_nothing_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no scans here")
    with pytest.raises(NoInputError, match="empty"):
        find_scans([tmp_path / "empty"])
    with pytest.raises(NoInputError, match="no image files"):
        find_scans([])


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "gone.png"
    with pytest.raises(InputError, match="file not found") as err:
        list(read_pages(p))
    _assert_one_line(err, p)
    assert err.value.page_index == 0


def test_directory(tmp_path: Path) -> None:
    p = tmp_path / "folder.png"
    p.mkdir()
    with pytest.raises(InputError, match="is a directory") as err:
        list(read_pages(p))
    _assert_one_line(err, p)


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "zero.png"
    p.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty file \(0 bytes\)") as err:
        list(read_pages(p))
    _assert_one_line(err, p)


def test_truncated_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    full = tmp_path / "full.png"
    Image.fromarray(rng.integers(0, 256, (200, 200), dtype=np.uint8)).save(full)
    p = tmp_path / "cut.png"
    data = full.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated") as err:
        list(read_pages(p))
    _assert_one_line(err, p)


def test_text_file_named_png(tmp_path: Path) -> None:
    p = tmp_path / "notes.png"
    p.write_text("this is not an image\nsecond line\n")
    with pytest.raises(InputError, match="not a supported image.*PNG, JPEG, BMP or TIFF") as err:
        list(read_pages(p))
    _assert_one_line(err, p)


def test_random_bytes_tif(tmp_path: Path) -> None:
    p = tmp_path / "noise.tif"
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="noise.tif") as err:
        list(read_pages(p))
    _assert_one_line(err, p)


def test_pdf_says_unsupported(tmp_path: Path) -> None:
    p = tmp_path / "form.pdf"
    p.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    with pytest.raises(InputError, match="PDF, which is not supported") as err:
        list(read_pages(p))
    _assert_one_line(err, p)


def test_over_max_pixels_parameter(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    Image.new("L", (100, 100), 255).save(p)
    with pytest.raises(InputError, match=r"0\.0 megapixels.*--max-megapixels") as err:
        list(read_pages(p, max_pixels=9_999))
    _assert_one_line(err, p)
    assert len(list(read_pages(p, max_pixels=10_000))) == 1


def test_huge_header_rejected_before_decoding(tmp_path: Path) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(20_000, 20_000))  # 400 MP claimed, < 200 bytes on disk
    assert p.stat().st_size < 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(InputError, match=r"20000 x 20000 = 400\.0 megapixels.*--max-megapixels") as err:
            list(read_pages(p))
    _assert_one_line(err, p)
    assert DEFAULT_MAX_PIXELS == 200_000_000


def test_pillow_limit_neither_fires_nor_leaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # Pillow would refuse 10 000 px
    p = tmp_path / "ok.png"
    Image.new("L", (100, 100), 255).save(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pages = list(read_pages(p))
    assert pages[0].size == (100, 100)
    assert Image.MAX_IMAGE_PIXELS == 1_000  # restored


def test_limit_restored_while_page_is_yielded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    p = tmp_path / "multi.tif"
    frames = [Image.new("L", (10, 10)) for _ in range(2)]
    frames[0].save(p, save_all=True, append_images=frames[1:])
    for _ in read_pages(p):
        assert Image.MAX_IMAGE_PIXELS == 1_000


def test_zero_size_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "flat.png"
    p.write_bytes(b"placeholder")  # Pillow's decoders refuse 0 x N headers; fake the open
    monkeypatch.setattr(io.Image, "open", lambda *_a, **_k: Image.new("L", (0, 5)))
    with pytest.raises(InputError, match=r"zero size \(0 x 5 pixels\)") as err:
        list(read_pages(p))
    _assert_one_line(err, p)


def test_multipage_tiff_corrupt_second_page(tmp_path: Path) -> None:
    p = tmp_path / "multi_bad.tif"
    frames = [Image.new("L", (50, 40), v) for v in (10, 20, 30)]
    frames[0].save(p, save_all=True, append_images=frames[1:], compression="tiff_deflate")
    with Image.open(p) as im:
        im.seek(1)
        (offset,), (count,) = im.tag_v2[273], im.tag_v2[279]  # StripOffsets, StripByteCounts
    data = bytearray(p.read_bytes())
    data[offset : offset + count] = b"\xff" * count  # page 2's deflate stream -> garbage
    p.write_bytes(bytes(data))

    it = read_pages(p)
    first = next(it)
    assert first.index == 0 and int(first.image[0, 0]) == 10
    with pytest.raises(InputError, match="page 2: corrupt or truncated") as err:
        next(it)
    _assert_one_line(err, p)
    assert err.value.page_index == 1


def test_colour_pages_keep_dropout_rulings_dark(tmp_path: Path) -> None:
    # a light blue and a light red ruling: grey is their darkest channel, not luma
    rgb = np.full((20, 30, 3), 255, np.uint8)
    rgb[5] = (150, 220, 255)
    rgb[10] = (255, 140, 140)
    rgb[15] = (20, 30, 120)  # blue pen ink
    p = tmp_path / "dropout.png"
    Image.fromarray(rgb, "RGB").save(p)
    img = _one(p).image
    luma = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    for row in (5, 10, 15):  # mean of the darkest channel and luma
        assert abs(int(img[row, 3]) - (int(rgb[row, 3].min()) + int(luma[row, 3])) / 2) <= 1
    assert int(img[5, 3]) < int(luma[5, 3]) - 20 and int(img[10, 3]) < int(luma[10, 3]) - 10  # darker than luma
    assert img[15, 3] < 40 and img[0, 0] == 255
    rgba = np.dstack([rgb, np.full((20, 30), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "dropout_a.png")
    assert _one(tmp_path / "dropout_a.png").image[5, 3] == img[5, 3]

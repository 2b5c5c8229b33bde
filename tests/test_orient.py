"""Page orientation from the printed text (pipeline.orient)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.align import align_page
from pipeline.boxes import find_fields
from pipeline.orient import text_orientation
from pipeline.types import Page

TEXT = (
    "Please write the number of your application in the boxes below.",
    "Keep each digit inside its box and do not fold this form.",
    "Applicants who qualify may apply by post or online, quoting the reference.",
    "The office will reply within eight working days of receipt.",
)


def _text_page(lines=TEXT) -> np.ndarray:
    img = np.full((1400, 1000), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(img, line, (60, 120 + 60 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 20, 2, cv2.LINE_AA)
    for i in range(6):  # a comb below the text, left blank
        cv2.rectangle(img, (300 + 60 * i, 700), (360 + 60 * i, 780), 0, 3)
    return img


def _score(img: np.ndarray):
    return text_orientation(find_fields(align_page(Page(Path("t.png"), 0, img, None))))


def test_upright_text_reads_upright_and_turned_text_upside_down():
    up = _score(_text_page())
    assert up.decided and not up.upside_down and up.lines >= 4
    down = _score(cv2.rotate(_text_page(), cv2.ROTATE_180))
    assert down.decided and down.upside_down
    assert down.score == pytest.approx(-up.score, abs=0.3)


def test_a_page_without_text_decides_nothing():
    img = _text_page(lines=())
    assert not _score(img).decided

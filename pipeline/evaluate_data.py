"""Labelled data on disk -> ``Evaluated`` digits: MNIST IDX files, folders of labelled crops, forms with truth."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .classify.checkpoint import LoadedModel
from .classify.predictor import Predictor
from .config import RunSettings
from .data import load_crop_folder, load_mnist
from .errors import ConfigError, InputError
from .evaluate import Evaluated
from .io import read_pages
from .score import load_truth, match_cells, score_pages
from .single import normalise_digit_image
from .types import FormResult
from .writer import form_to_dict

log = logging.getLogger(__name__)

SCORE_KEYS = (  # figures of ``pipeline.score.score_pages`` copied into a forms summary
    "cell_recall", "cell_precision", "digit_accuracy", "digit_accuracy_found", "blank_accuracy", "field_accuracy",
    "pages_truth", "pages_missing", "cells_truth", "cells_found", "cells_predicted", "digits_truth", "digits_found",
    "blank_truth", "false_digits_on_blank", "fields_truth", "fields_exact", "spurious_digits", "spurious_unflagged",
    "fields_flagged", "fields_wrong_unflagged", "field_confidence", "field_accuracy_found", "field_ece", "field_ece_unflagged",
    "digits_legible", "digit_accuracy_legible", "errors_unflagged_legible", "illegible_wrong_unflagged", "flag_reasons",
)


def _from_probs(labels: np.ndarray, probs: np.ndarray, crops: np.ndarray, sources: tuple[str, ...]) -> Evaluated:
    """Digit = argmax over the ten digit classes; its probability is the confidence (as in
    ``prediction_from_probs``: a not-a-digit class only lowers it)."""
    pred = probs[:, :10].argmax(1) if len(probs) else np.zeros(0, np.int64)
    conf = probs[np.arange(len(pred)), pred].astype(np.float64) if len(probs) else np.zeros(0)
    return Evaluated(np.asarray(labels, np.int64), pred.astype(np.int64), conf, crops, sources)


def evaluate_mnist(data_dir: Path, predictor: Predictor, split: str = "test") -> Evaluated:
    """Read MNIST IDX digits (already MNIST-normalised) with the classifier.

    Args:
        data_dir: folder of the IDX files (``pipeline.data.load_mnist``).
        predictor: batched classifier.
        split: "test" (``t10k-*``, 10,000 digits never used in training) or "train".

    Returns:
        One entry per image; sources are ``"t10k[i]"`` / ``"train[i]"``.

    Raises:
        ConfigError: files missing or unknown split. InputError: a file is corrupt.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"--split {split}: unknown split", hint="use train or test")
    images, labels = load_mnist(Path(data_dir), split)
    crops = images.astype(np.float32) / 255.0
    stem = "t10k" if split == "test" else "train"
    return _from_probs(labels, predictor.probabilities(crops), crops, tuple(f"{stem}[{i}]" for i in range(len(labels))))


def evaluate_crops(root: Path, predictor: Predictor) -> Evaluated:
    """Read a folder of labelled single-digit images ``ROOT/<digit>/*.png``.

    Each image (first page) is normalised with ``pipeline.single.normalise_digit_image``, as
    ``digitform predict`` does: any size, either polarity, with or without a box. A blank
    image counts as an error with confidence 0 (no digit read); an unreadable file is
    skipped with a warning.

    Raises:
        ConfigError: the folder is missing or holds no labelled image.
    """
    paths, labels = load_crop_folder(Path(root))
    crops, keep = [], []
    for i, path in enumerate(paths):
        try:
            page = next(iter(read_pages(path)))
        except (InputError, StopIteration) as exc:
            log.warning("%s: skipped (%s)", path, exc.one_line() if isinstance(exc, InputError) else "no page")
            continue
        crops.append(normalise_digit_image(page.image))
        keep.append(i)
    if not keep:
        raise InputError(f"{root}: none of the {len(paths)} labelled images could be read", hint="check the image files")
    stack = np.stack(crops).astype(np.float32)
    blank = ~stack.reshape(len(stack), -1).any(axis=1)
    probs = np.zeros((len(stack), len(predictor.model.classes)), np.float32)
    if (~blank).any():
        probs[~blank] = predictor.probabilities(stack[~blank])
    ev = _from_probs(labels[keep], probs, stack, tuple(str(paths[i]) for i in keep))
    pred, conf = ev.predicted.copy(), ev.confidence.copy()
    pred[blank], conf[blank] = -1, 0.0
    return Evaluated(ev.labels, pred, conf, ev.crops, ev.sources)


def evaluate_forms(truth_path: Path, settings: RunSettings, model: LoadedModel) -> tuple[Evaluated, dict[str, Any]]:
    """Process scanned forms listed in a truth file and match every written digit to its truth.

    The scans are those named by the truth pages (``pipeline.score.load_truth``), read with
    ``pipeline.run.process_batch``. Cells are matched by box IoU >= 0.5
    (``pipeline.score.match_cells``); each truth digit in a found cell gives one entry (a
    cell read as blank: digit -1, its blank confidence); truth digits in cells that were not
    found are left out here and counted by ``score_pages``.

    Args:
        truth_path: ``truth.json``, or the folder holding it.
        settings: run settings (``min_confidence`` is the review threshold).
        model: the loaded model.

    Returns:
        (per-digit outcomes, ``score_pages`` report without ``per_page``, plus ``pages_failed``).

    Raises:
        ConfigError: no truth file there. InputError: it is malformed. NoInputError: it lists no page.
    """
    from .run import process_batch

    truth_path = Path(truth_path)
    if truth_path.is_dir():
        truth_path = truth_path / "truth.json"
    if not truth_path.is_file():
        raise ConfigError(f"{truth_path}: truth file not found", hint="point --forms at a folder written by 'digitform synth' or at its truth.json")
    truth = load_truth(truth_path)
    sources = list(dict.fromkeys(Path(t["source"]) for t in truth))
    forms: list[FormResult] = []
    process_batch(sources, settings, forms.append, model=model)
    pages = [form_to_dict(f) for f in forms]
    scores = score_pages(pages, truth)
    by_key = {(Path(f.source).name, f.page): (f, d) for f, d in zip(forms, pages)}
    labels, pred, conf, crops, where = [], [], [], [], []
    for t in truth:
        key = (Path(str(t.get("source", ""))).name, int(t.get("page", 1)))
        if key not in by_key:
            continue
        form, page = by_key[key]
        match = match_cells(page, t)
        cells = [(f.name, d) for f in form.fields for d in f.digits]
        tcells = [d for f in t.get("fields") or [] for d in f.get("digits") or []]
        for ti, d in enumerate(tcells):
            if d.get("blank") or d.get("digit") in (None, "") or ti not in match:
                continue
            name, got = cells[match[ti]]
            labels.append(int(d["digit"]))
            pred.append(-1 if got.prediction.digit is None else int(got.prediction.digit))
            conf.append(float(got.prediction.confidence))
            crops.append(got.crop.pixels)
            where.append(f"{key[0]} p{key[1]} {name}[{got.cell.position}]")
    ev = Evaluated(
        np.asarray(labels, np.int64), np.asarray(pred, np.int64), np.asarray(conf, np.float64),
        np.stack(crops).astype(np.float32) if crops else np.zeros((0, 28, 28), np.float32), tuple(where),
    )
    report = {k: scores[k] for k in SCORE_KEYS}
    report["pages_failed"] = sum(f.status.value == "failed" for f in forms)
    return ev, report

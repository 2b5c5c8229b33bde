"""Labelled digits (MNIST IDX, crop folders, forms with truth) -> accuracy, calibration and flag metrics, plots.

Three kinds of labelled data (``pipeline.evaluate_data``) give one ``Evaluated`` (per digit:
truth, digit read, confidence, the crop the classifier saw); ``summarise`` turns it into the JSON summary of
``digitform evaluate`` and ``pipeline.evaluate_plots`` draws the confusion matrix, the
error-reject curve and the most confident errors. A digit is *flagged* when its confidence
is below the threshold (``pipeline.assemble``), and an *unflagged error* is a wrong digit
that nobody will review: the figure a threshold is chosen for.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import ECE_BINS, ece  # noqa: F401  (re-exported: scripts and tests import them from here)
from .classify.checkpoint import default_checkpoint_path, load_checkpoint, store_threshold
from .classify.predictor import Predictor
from .config import RunSettings, build
from .errors import ConfigError, OutputError
from .classify.predictor import resolve_device

log = logging.getLogger(__name__)

TABLE_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True, slots=True)
class Evaluated:
    """Per-digit outcome of reading labelled digits."""

    labels: np.ndarray  # (N,) int64 true digit, 0-9
    predicted: np.ndarray  # (N,) int64 digit read, 0-9, or -1 when none was read (blank verdict)
    confidence: np.ndarray  # (N,) float64 calibrated probability of the digit read, in [0, 1]
    crops: np.ndarray  # (N, 28, 28) float32 in [0, 1], ink = 1: what the classifier saw
    sources: tuple[str, ...]  # where each digit comes from ("t10k[12]", a file, "form.png p1 field_2[3]")

    @property
    def correct(self) -> np.ndarray:
        """(N,) bool: the digit read is the true one."""
        return self.predicted == self.labels


# --------------------------------------------------------------------------- metrics


def threshold_metrics(conf: np.ndarray, correct: np.ndarray, threshold: float) -> dict[str, float | int]:
    """What a review threshold does on labelled digits (a digit is flagged when conf < threshold).

    Args:
        conf: (N,) confidences in [0, 1]. correct: (N,) bool. threshold: in [0, 1].

    Returns:
        ``flagged`` (count), ``flag_rate`` (flagged / N), ``errors_flagged``,
        ``errors_unflagged``, ``caught`` (errors flagged / errors; 1.0 without errors),
        ``error_rate_unflagged`` (errors among the unflagged digits / unflagged; 0.0 when all
        are flagged) and ``unflagged_errors_per_1000`` (1000 * unflagged errors / N).
    """
    conf = np.asarray(conf, np.float64)
    wrong = ~np.asarray(correct, bool)
    flagged = conf < threshold
    n = len(conf)
    n_flag = int(flagged.sum())
    e_flag, e_unflag = int((wrong & flagged).sum()), int((wrong & ~flagged).sum())
    return {
        "flagged": n_flag,
        "flag_rate": n_flag / n if n else 0.0,
        "errors_flagged": e_flag,
        "errors_unflagged": e_unflag,
        "caught": e_flag / (e_flag + e_unflag) if e_flag + e_unflag else 1.0,
        "error_rate_unflagged": e_unflag / (n - n_flag) if n - n_flag else 0.0,
        "unflagged_errors_per_1000": 1000.0 * e_unflag / n if n else 0.0,
    }


def error_reject_curve(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Error rate among accepted digits against the share rejected (flagged), over all thresholds.

    The accepted set at a threshold is the digits with confidence >= threshold, so the curve
    has one point per distinct confidence (ties are never split), plus "reject nothing".

    Args:
        conf: (N,) confidences. correct: (N,) bool.

    Returns:
        (thresholds, reject_rate, error_rate): (K,) float64 each, by increasing threshold;
        ``thresholds[0]`` = 0 (nothing rejected); ``thresholds[i]`` for i > 0 is the lowest
        confidence still accepted; rates in [0, 1]. Empty arrays for N = 0.
    """
    conf = np.asarray(conf, np.float64)
    wrong = ~np.asarray(correct, bool)
    n = len(conf)
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    order = np.argsort(-conf, kind="stable")
    c, err = conf[order], np.cumsum(wrong[order])
    k = np.nonzero(np.r_[c[:-1] > c[1:], True])[0] + 1  # accepted counts at which confidence changes
    thr = c[k - 1]
    rej = 1.0 - k / n
    er = err[k - 1] / k
    # increasing threshold = decreasing k
    thr, rej, er = thr[::-1].copy(), rej[::-1].copy(), er[::-1].copy()
    thr[0] = 0.0
    return thr, rej, er


def recommend_threshold(conf: np.ndarray, correct: np.ndarray, target_error: float) -> float | None:
    """The lowest review threshold at which the error rate among unflagged digits is <= target.

    Digits are flagged when confidence < threshold. Scanning thresholds from low (flag
    nothing) to high, the first accepted set {conf >= t} whose error rate is <= ``target_error``
    wins; the error rate is not monotone in the threshold, so this is the lowest threshold
    meeting the target, not the first one after which it always holds. Any threshold
    between the most confident flagged digit and the least confident accepted one gives the
    same flags on this data; the midpoint of the two is returned (0.0 when nothing needs
    flagging).

    Args:
        conf: (N,) confidences in [0, 1].
        correct: (N,) bool.
        target_error: largest acceptable error rate among unflagged digits, in [0, 1]
            (0.001 = at most 1 unflagged error per 1000 accepted digits).

    Returns:
        The threshold in [0, 1], or None when no threshold meets the target (every level of
        confidence, down to the most confident digits alone, has too many errors).

    >>> recommend_threshold(np.array([0.95, 0.9, 0.8, 0.7, 0.6]), np.array([1, 1, 0, 1, 0], bool), 0.0)
    0.85
    """
    conf = np.asarray(conf, np.float64)
    wrong = ~np.asarray(correct, bool)
    n = len(conf)
    if n == 0:
        return 0.0
    order = np.argsort(-conf, kind="stable")
    c, err = conf[order], np.cumsum(wrong[order])
    k = np.nonzero(np.r_[c[:-1] > c[1:], True])[0] + 1  # admissible accepted counts, increasing
    ok = err[k - 1] <= target_error * k + 1e-12
    if not ok.any():
        return None
    kk = int(k[np.nonzero(ok)[0][-1]])  # accept the most digits: the lowest threshold
    if kk == n:
        return 0.0
    return float(round((c[kk - 1] + c[kk]) / 2.0, 6))


def summarise(ev: Evaluated, threshold: float, *, target_error: float | None = None) -> dict[str, Any]:
    """The JSON summary of an evaluation.

    Args:
        ev: per-digit outcomes.
        threshold: review threshold in [0, 1] (digits below it are flagged).
        target_error: when given, add ``recommended_threshold`` (``recommend_threshold``)
            and the flag rate, caught share and unflagged error rate it implies.

    Returns:
        ``n``, ``accuracy``, ``error_rate``, ``errors``, ``ece`` (15 bins), ``threshold``,
        the ``threshold_metrics`` keys (``flag_rate``, ``caught``, ``unflagged_errors_per_1000``...),
        ``no_digit_read`` (digits read as blank), and ``threshold_table``: the same metrics
        at the thresholds ``TABLE_THRESHOLDS`` and the current one. Ratios are rounded to 6
        decimals.
    """
    correct = ev.correct
    n = len(correct)
    out: dict[str, Any] = {
        "n": n,
        "accuracy": _r(correct.mean()) if n else 1.0,
        "error_rate": _r(1.0 - correct.mean()) if n else 0.0,
        "errors": int((~correct).sum()),
        "no_digit_read": int((ev.predicted < 0).sum()),
        "ece": _r(ece(ev.confidence, correct)),
        "threshold": float(threshold),
    }
    out.update(_rounded(threshold_metrics(ev.confidence, correct, threshold)))
    table = sorted(set(TABLE_THRESHOLDS) | {float(threshold)})
    out["threshold_table"] = [{"threshold": t, **_rounded(threshold_metrics(ev.confidence, correct, t))} for t in table]
    if target_error is not None:
        rec = recommend_threshold(ev.confidence, correct, target_error)
        out["target_error"] = float(target_error)
        out["recommended_threshold"] = rec
        if rec is not None:
            m = threshold_metrics(ev.confidence, correct, rec)
            out["recommended_flag_rate"] = _r(m["flag_rate"])
            out["recommended_caught"] = _r(m["caught"])
            out["recommended_error_rate_unflagged"] = _r(m["error_rate_unflagged"])
        else:
            out["recommended_flag_rate"] = None
    return out


def _r(x: float) -> float:
    return round(float(x), 6)


def _rounded(d: dict[str, float | int]) -> dict[str, float | int]:
    return {k: (v if isinstance(v, int) else _r(v)) for k, v in d.items()}


# --------------------------------------------------------------------------- the command


def run_evaluation(
    *,
    data: Path | None = None,
    crops: Path | None = None,
    forms: Path | None = None,
    split: str = "test",
    model: Path | None = None,
    device: str = "auto",
    threshold: float | None = None,
    target_error: float | None = None,
    write_threshold: bool = False,
    out_dir: Path = Path("eval"),
    batch_size: int = 256,
) -> dict[str, Any]:
    """``digitform evaluate``: read labelled digits, summarise, draw the plots, optionally store a threshold.

    Exactly one of ``data`` (MNIST IDX folder), ``crops`` (``DIR/<digit>/*.png``) and
    ``forms`` (``truth.json`` or its folder) is given.

    Writes into ``out_dir``: ``confusion.png``, ``error_reject.png``, ``worst_errors.png``
    and ``summary.json`` (the returned dict).

    Args:
        data, crops, forms: the labelled data (one of them).
        split: MNIST split for ``data``: "test" or "train".
        model: checkpoint; None = the shipped weights.
        device: "auto" | "cpu" | "cuda".
        threshold: review threshold in [0, 1]; None = the model's stored threshold.
        target_error: largest acceptable error rate among unflagged digits, in [0, 1); adds
            ``recommended_threshold`` and ``recommended_flag_rate`` to the summary.
        write_threshold: store the recommended threshold in ``model`` (needs ``target_error``
            and an explicit ``model``: the shipped checkpoint is never rewritten).
        out_dir: folder for the plots (created).
        batch_size: crops per forward pass.

    Returns:
        The summary (``summarise`` keys, plus ``kind``, ``source``, ``model``, ``files``, and for
        forms the ``score_pages`` figures such as ``cell_recall`` and ``digit_accuracy``;
        ``threshold_written`` when ``write_threshold``).

    Raises:
        ConfigError: not exactly one data kind, a value out of range, ``write_threshold``
            without ``target_error`` / ``model`` or with no threshold meeting the target.
        ModelError: bad checkpoint. InputError / NoInputError: unreadable data.
        OutputError: ``out_dir`` or the checkpoint cannot be written.
    """
    from .evaluate_data import evaluate_crops, evaluate_forms, evaluate_mnist
    from .evaluate_plots import plot_confusion, plot_error_reject, plot_worst_errors

    given = [(k, v) for k, v in (("data", data), ("crops", crops), ("forms", forms)) if v is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of --data, --crops, --forms", hint="e.g. --data ../shared/data/mnist")
    kind, src = given[0]
    if target_error is not None and not 0.0 <= target_error < 1.0:
        raise ConfigError(f"--target-error {target_error}: must be in [0, 1)", hint="e.g. 0.001 for 1 unflagged error per 1000 digits")
    if write_threshold and target_error is None:
        raise ConfigError("--write-threshold needs --target-error", hint="e.g. --target-error 0.001 --write-threshold")
    if write_threshold and model is None:
        raise ConfigError(
            "--write-threshold would rewrite the shipped checkpoint",
            hint=f"pass --model explicitly (e.g. a copy of {default_checkpoint_path().name})",
        )
    settings = build(RunSettings, None, device=device, min_confidence=threshold, model=model, batch_size=batch_size)
    dev = resolve_device(settings.device)
    loaded = load_checkpoint(settings.model, dev)
    thr = settings.min_confidence if settings.min_confidence is not None else loaded.threshold
    predictor = Predictor(loaded, dev, settings.batch_size)
    extra: dict[str, Any] = {}
    if kind == "data":
        ev = evaluate_mnist(Path(src), predictor, split)
    elif kind == "crops":
        ev = evaluate_crops(Path(src), predictor)
    else:
        ev, extra = evaluate_forms(Path(src), settings.model_copy(update={"min_confidence": thr}), loaded)
    summary: dict[str, Any] = {"kind": {"data": "mnist", "crops": "crops", "forms": "forms"}[kind], "source": str(src)}
    if kind == "data":
        summary["split"] = split
    summary.update(summarise(ev, thr, target_error=target_error))
    summary.update(extra)
    summary["model"] = loaded.describe()
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {
            "confusion": plot_confusion(ev, out_dir / "confusion.png"),
            "error_reject": plot_error_reject(ev, thr, out_dir / "error_reject.png", recommended=summary.get("recommended_threshold"), target_error=target_error),
            "worst_errors": plot_worst_errors(ev, out_dir / "worst_errors.png"),
        }
        summary["files"] = {k: str(v) for k, v in files.items()} | {"summary": str(out_dir / "summary.json")}
        if write_threshold:
            rec = summary.get("recommended_threshold")
            if rec is None:
                raise ConfigError(
                    f"no threshold keeps the unflagged error rate at or below {target_error} on this data",
                    hint="raise --target-error or evaluate on more data",
                )
            note = {"target_error": target_error, "kind": summary["kind"], "source": str(src), "n": summary["n"],
                    "flag_rate": summary["recommended_flag_rate"], "previous_threshold": loaded.threshold}
            store_threshold(Path(model), rec, note)  # type: ignore[arg-type]
            summary["threshold_written"] = {"file": str(model), "threshold": rec}
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot write the evaluation files: {exc.strerror or exc}", hint="pass a writable --out-dir") from exc
    return summary

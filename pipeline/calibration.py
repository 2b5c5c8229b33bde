"""Calibration metrics that need only numpy (used by ``pipeline.evaluate`` and ``pipeline.score``)."""

from __future__ import annotations

import numpy as np

ECE_BINS = 15  # Guo et al. (2017) report ECE with 15 equal-width bins


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error with equal-width confidence bins.

    ECE = sum over bins b of |B_b| / N * |accuracy(B_b) - mean confidence(B_b)| (Guo, Pleiss,
    Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017, eq. 3), with bins
    (0, 1/bins], ..., ((bins-1)/bins, 1]; a confidence of exactly 0 falls in the first bin.

    Args:
        conf: (N,) confidences in [0, 1].
        correct: (N,) bool (or 0/1), the prediction was right.
        bins: number of bins.

    Returns:
        ECE in [0, 1]; 0.0 for N = 0.

    >>> round(ece(np.array([0.9, 0.9]), np.array([True, False])), 3)
    0.4
    """
    conf = np.asarray(conf, np.float64)
    correct = np.asarray(correct, np.float64)
    if conf.size == 0:
        return 0.0
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)

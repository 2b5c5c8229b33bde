"""Classifier on a CUDA GPU: the same probabilities as on the CPU (needs a GPU; skipped elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.classify.checkpoint import load_checkpoint
from pipeline.classify.predictor import Predictor

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU visible to PyTorch"),
]


def crops(n: int, seed: int = 0) -> np.ndarray:
    """(n, 28, 28) float32 in [0, 1]: random strokes on blank paper, plus pure noise."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.float32)
    for i in range(n):
        for _ in range(rng.integers(1, 4)):
            r0, c0 = rng.integers(4, 24, size=2)
            r1, c1 = rng.integers(4, 24, size=2)
            t = np.linspace(0, 1, 40)
            x[i, np.round(r0 + t * (r1 - r0)).astype(int), np.round(c0 + t * (c1 - c0)).astype(int)] = 1.0
    x[: n // 4] = rng.random((n // 4, 28, 28), dtype=np.float32)
    return x


@pytest.mark.parametrize("batch_size", [7, 256])
def test_cuda_probabilities_match_cpu(batch_size):
    x = crops(300)
    cpu = Predictor(load_checkpoint(None, "cpu"), torch.device("cpu"), batch_size).probabilities(x)
    gpu = Predictor(load_checkpoint(None, "cuda"), torch.device("cuda"), batch_size).probabilities(x)
    assert gpu.shape == cpu.shape == (300, 10)
    assert gpu.dtype == np.float32
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    np.testing.assert_allclose(gpu.sum(1), 1.0, atol=1e-5)
    assert next(Predictor(load_checkpoint(None, "cuda"), torch.device("cuda")).model.net.parameters()).is_cuda


def test_cuda_empty_stack():
    model = load_checkpoint(None, "cuda")
    p = Predictor(model, torch.device("cuda")).probabilities(np.zeros((0, 28, 28), np.float32))
    assert p.shape == (0, len(model.classes))

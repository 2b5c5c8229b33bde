"""The digit CNN (an ``nn.Module`` only: no I/O, no preprocessing)."""

from __future__ import annotations

import torch
from torch import nn

ARCH_NAME = "digitnet-v1"


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DigitNet(nn.Module):
    """A small all-convolutional CNN for 28x28 digit crops.

    Layout after the widely reproduced Kaggle MNIST recipe (C. Deotte, "How to choose CNN
    architecture MNIST", 2018): two blocks of conv3-conv3-conv5/stride-2 with batch
    normalisation (Ioffe & Szegedy, 2015) and dropout (Srivastava et al., 2014), stride-2
    convolutions in place of pooling (Springenberg et al., 2015, "Striving for simplicity").
    Valid padding keeps it at about 11 M multiply-adds per crop so that it trains on a
    2-core CPU.

    Args:
        num_classes: number of output logits (10 digits).
        width: channels of the first block; the second block has ``2 * width``.
        dropout: dropout probability after each block.

    Input: (N, 1, 28, 28) float32, normalised as in the checkpoint's ``preprocess`` metadata.
    Output: (N, num_classes) float32 logits (uncalibrated; divide by the checkpoint's temperature).
    """

    def __init__(self, num_classes: int = 10, width: int = 32, dropout: float = 0.3) -> None:
        super().__init__()
        w1, w2 = width, 2 * width
        self.features = nn.Sequential(
            _conv_bn(1, w1, 3),  # 26
            _conv_bn(w1, w1, 3),  # 24
            _conv_bn(w1, w1, 5, stride=2),  # 10
            nn.Dropout(dropout),
            _conv_bn(w1, w2, 3),  # 8
            _conv_bn(w2, w2, 3),  # 6
            _conv_bn(w2, w2, 5, stride=2),  # 1
            nn.Dropout(dropout),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w2, 128, bias=False),
            nn.BatchNorm1d(128),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

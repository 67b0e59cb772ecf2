"""The seeds' baseline: three conv+ReLU+max-pool blocks, then two fully connected layers."""

from __future__ import annotations

from torch import nn


class BaselineCNN(nn.Module):
    min_input_size = 8  # three 2x2 max-pools need at least 8 pixels per side
    weights_used = "random init"

    def __init__(self, height: int = 50, width: int = 50, channels=(32, 64, 128), hidden: int = 128,
                 dropout: float = 0.3):
        super().__init__()
        layers, in_ch = [], 1
        for out_ch in channels:
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        h, w = height, width
        for _ in channels:
            h, w = h // 2, w // 2
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_ch * h * w, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 2),
        )

    def forward(self, x):
        return self.head(self.features(x))

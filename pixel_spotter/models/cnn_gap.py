"""The regressor of the 'Pixel-Coordinate-Regression' write-up: conv blocks, global average pooling, dropout
and a sigmoid output.

Global average pooling throws away where in the image a feature fired, so the network can only learn
position from what the zero padding at the borders lets a feature "see"; its errors are large (it is the
write-up's recipe, reproduced as written; experiments/robustness/ reports how it does).
"""

from __future__ import annotations

from torch import nn

from pixel_spotter.models import require_channel_list, require_dropout, require_int


class GapCNN(nn.Module):
    min_input_size = 8
    weights_used = "random init"

    def __init__(self, channels=(32, 64, 128), hidden: int = 64, dropout: float = 0.3):
        super().__init__()
        require_channel_list(channels)
        require_int("hidden", hidden, 64)
        require_dropout(dropout)
        layers, in_ch = [], 1
        for out_ch in channels:  # a block: conv + batch norm + ReLU + 2x2 max-pool (ceil: odd sizes keep the edge)
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(in_ch, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, 2), nn.Sigmoid(),  # (x, y) in [0, 1], like the targets
        )

    def forward(self, x):
        return self.head(self.features(x))

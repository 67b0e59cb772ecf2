"""The baseline CNN of the write-ups this project started from: three conv+ReLU+max-pool blocks, then two
fully connected layers.

``pool_ceil_mode=False`` (the write-ups' and PyTorch's default) floors odd sizes: 50 -> 25 -> 12 -> 6, so
the second pool drops the feature row/column that covers image rows/columns 48-49, and the network
sees a pixel there only through a neighbour's 3x3 receptive field. The report's error map shows the
effect (the largest errors sit on the right and bottom edges). ``True`` keeps them (50 -> 25 -> 13 -> 7).
"""

from __future__ import annotations

import math

from torch import nn

from pixel_spotter.errors import ConfigError
from pixel_spotter.models import require_bool, require_channel_list, require_dropout, require_int


class BaselineCNN(nn.Module):
    min_input_size = 8  # three 2x2 max-pools need at least 8 pixels per side
    weights_used = "random init"

    def __init__(self, height: int = 50, width: int = 50, channels=(32, 64, 128), hidden: int = 128,
                 dropout: float = 0.3, pool_ceil_mode: bool = False):
        super().__init__()
        _check(height, width, channels, hidden, dropout, pool_ceil_mode)
        layers, in_ch = [], 1
        for out_ch in channels:
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=pool_ceil_mode)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        h, w = height, width
        for _ in channels:
            h, w = (math.ceil(h / 2), math.ceil(w / 2)) if pool_ceil_mode else (h // 2, w // 2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_ch * h * w, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 2),
        )

    def forward(self, x):
        return self.head(self.features(x))


def _check(height, width, channels, hidden, dropout, pool_ceil_mode) -> None:
    shown = require_channel_list(channels)
    require_int("hidden", hidden, 128)
    require_dropout(dropout)
    require_bool("pool_ceil_mode", pool_ceil_mode)
    h, w = height, width
    for _ in channels:
        h, w = (math.ceil(h / 2), math.ceil(w / 2)) if pool_ceil_mode else (h // 2, w // 2)
    if min(h, w) < 1:
        raise ConfigError(f"model.net.channels={shown} pools a {height}x{width} image {len(channels)} times, down "
                          f"to {h}x{w}; use fewer entries in model.net.channels or a larger image "
                          "(data.height/data.width)")

"""CoordConv regressor (Liu et al. 2018): coordinate channels in, per-pixel features, max-pooled readout.

Normalized x and y coordinate channels are appended to the image, so a convolution can compute
"where am I" as easily as "what is here". Convolutions keep the full resolution; the last one gives
two maps (an x-vote and a y-vote per pixel) and a global max over positions reads out the coordinates,
as in the paper's coordinate regressor. The network can represent the exact answer with one ReLU
(e.g. relu(x + image - 1) is x at the bright pixel and 0 elsewhere), and, since nothing in it depends
on absolute position except through the coordinate channels, it extrapolates to unseen quadrants.
"""

from __future__ import annotations

import torch
from torch import nn


class AddCoords(nn.Module):
    """Append x (column) and y (row) channels in [0, 1], matching the target normalization."""

    def forward(self, x):
        n, _, h, w = x.shape
        xs = torch.linspace(0, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        ys = torch.linspace(0, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        return torch.cat([x, xs, ys], dim=1)


class CoordConvRegressor(nn.Module):
    min_input_size = 1
    weights_used = "random init"

    def __init__(self, channels: int = 32, layers: int = 2, kernel_size: int = 1):
        super().__init__()
        body, in_ch = [AddCoords()], 3
        for _ in range(layers):
            body += [nn.Conv2d(in_ch, channels, kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True)]
            in_ch = channels
        body.append(nn.Conv2d(in_ch, 2, 1))
        self.features = nn.Sequential(*body)

    def forward(self, x):
        return self.features(x).amax(dim=(2, 3))

"""CoordConv regressor (Liu et al. 2018): coordinate channels in, per-pixel features, max-pooled readout.

Normalized x and y coordinate channels are appended to the image, so a convolution can compute
"where am I" as easily as "what is here". Convolutions keep the full resolution; the last one gives
two maps (an x-vote and a y-vote per pixel) and a global max over positions reads out the coordinates,
as in the paper's coordinate regressor. The network can represent the exact answer with one ReLU
(e.g. relu(x + image - 1) is x at the bright pixel and 0 elsewhere).

``separable``: with ``False`` (the paper's layout) both votes see (image, x, y). The quadrant split
holds out a *joint* region of (x, y), so a vote that learned any x-y interaction is asked about inputs
it never saw, and extrapolation is partial. With ``True`` the network is two independent halves
(grouped convolutions): the x-vote sees only (image, x), the y-vote only (image, y). Every x value
(and every y value) does occur with a bright pixel in the three training quadrants, so held-out
positions are no longer outside the training range of either half. It extrapolates when it trains, but
in some seeds it never starts learning (a hard max only passes gradient to the winning pixel, and with
half the inputs per group the bright pixel often never wins), so it is an option to study, not the
default. Measured: experiments/zoo/README.md ("Side measurements").
"""

from __future__ import annotations

import torch
from torch import nn

from pixel_spotter.errors import ConfigError
from pixel_spotter.models import require_bool, require_int


class AddCoords(nn.Module):
    """Append x (column) and y (row) channels in [0, 1], matching the target normalization.

    ``separable``: return (image, x, image, y) instead, the input of two independent groups."""

    def __init__(self, separable: bool = False):
        super().__init__()
        self.separable = separable

    def forward(self, x):
        n, _, h, w = x.shape
        xs = torch.linspace(0, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        ys = torch.linspace(0, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        return torch.cat([x, xs, x, ys] if self.separable else [x, xs, ys], dim=1)


class CoordConvRegressor(nn.Module):
    min_input_size = 1
    weights_used = "random init"

    def __init__(self, channels: int = 32, layers: int = 2, kernel_size: int = 1, separable: bool = False):
        super().__init__()
        require_int("channels", channels, 32)
        require_int("layers", layers, 2)
        require_int("kernel_size", kernel_size, 1, odd=True)  # padding k // 2 keeps the size only for odd k
        require_bool("separable", separable)
        groups = 2 if separable else 1
        if separable and channels % 2:
            raise ConfigError(f"model.net.channels={channels}: separable CoordConv needs an even channel count; "
                              f"e.g. model.net.channels={channels + 1}")
        body, in_ch = [AddCoords(separable)], 4 if separable else 3
        for _ in range(layers):
            body += [nn.Conv2d(in_ch, channels, kernel_size, padding=kernel_size // 2, groups=groups),
                     nn.ReLU(inplace=True)]
            in_ch = channels
        body.append(nn.Conv2d(in_ch, 2, 1, groups=groups))  # group 0 -> x-vote, group 1 -> y-vote
        self.features = nn.Sequential(*body)

    def forward(self, x):
        return self.features(x).amax(dim=(2, 3))

"""Heatmap + spatial soft-argmax (DSNT-style): score every pixel, read out the expected position.

A fully convolutional network (resolution kept, no pooling, no fully connected layer) gives one
score per pixel; a softmax over the H*W scores, sharpened by a learned temperature, is a probability
map; the prediction is the expected (x, y) under it. Because every layer is a convolution the model
is translation-equivariant, so it localizes at positions (and quadrants) it never saw in training,
and the readout is differentiable, so it trains with the same coordinate loss as every other model.

Padding: the *image* is zero-padded once by the receptive-field radius and the convolutions are
unpadded ("valid"). Zero-padding every layer instead (the usual "same" padding) is not the same as
more background: a hidden layer's background activation is relu(bias), not 0, so a bright pixel on
the border lost half its neighbours' support and the soft-argmax drifted inwards there (measured:
experiments/zoo/README.md, "Side measurements"). Padding the input keeps the network exactly
translation-equivariant up to the border. ``padding=replicate`` continues the border pixels instead, which is
what corrupted images need (see PADDINGS).

Readout and loss are a choice (``readout``, and ``model.loss`` in module.py): the soft-argmax trains with the
coordinate loss; under noise its softmax mass on a noisy background pulls the estimate toward the centre.
``readout=argmax`` answers with the best-scoring pixel instead and trains the score map as a classifier over
pixels (``model.loss=cross_entropy``), which keeps up with the argmax detector on noisy images
(experiments/robustness/).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pixel_spotter.errors import ConfigError
from pixel_spotter.models import require_bool, require_int

READOUTS = ("soft_argmax", "argmax")
# How the image continues past its border: zeros (a clean image's background, exact there) or replicate (the
# border pixels repeated: a blurred spot on the border is not pulled inwards, and a background level continues)
PADDINGS = {"zeros": nn.ZeroPad2d, "replicate": nn.ReplicationPad2d}


def hard_argmax(scores: torch.Tensor) -> torch.Tensor:
    """(N, H, W) scores -> (N, 2) (x, y) of the best-scoring pixel, normalized to [0, 1] (no gradient)."""
    n, h, w = scores.shape
    flat = scores.flatten(1).argmax(dim=1)
    xy = torch.stack([flat % w, flat // w], dim=1).to(scores.dtype)
    return xy / torch.tensor([max(w - 1, 1), max(h - 1, 1)], device=scores.device, dtype=scores.dtype)


def soft_argmax(scores: torch.Tensor) -> torch.Tensor:
    """(N, H, W) scores -> (N, 2) expected (x, y), normalized to [0, 1] like the targets."""
    n, h, w = scores.shape
    probs = scores.flatten(1).softmax(dim=1).view(n, h, w)
    xs = torch.linspace(0, 1, w, device=scores.device, dtype=probs.dtype)
    ys = torch.linspace(0, 1, h, device=scores.device, dtype=probs.dtype)
    return torch.stack([(probs.sum(dim=1) * xs).sum(dim=1), (probs.sum(dim=2) * ys).sum(dim=1)], dim=1)


class HeatmapSoftArgmax(nn.Module):
    min_input_size = 1
    weights_used = "random init"

    def __init__(self, channels: int = 16, layers: int = 2, kernel_size: int = 3, init_temperature: float = 10.0,
                 learn_temperature: bool = True, readout: str = "soft_argmax", skip: bool = False,
                 padding: str = "zeros"):
        super().__init__()
        if readout not in READOUTS:
            raise ConfigError(f"model.net.readout={readout!r} is unknown; choose one of {', '.join(READOUTS)}")
        self.readout_name = readout
        if padding not in PADDINGS:
            raise ConfigError(f"model.net.padding={padding!r} is unknown; choose one of {', '.join(PADDINGS)}")
        require_int("channels", channels, 16)
        require_int("layers", layers, 2)
        require_int("kernel_size", kernel_size, 3, odd=True)  # an even kernel would shift the score map
        if not (isinstance(init_temperature, (int, float)) and not isinstance(init_temperature, bool)
                and math.isfinite(init_temperature) and init_temperature > 0):
            raise ConfigError(f"model.net.init_temperature must be a number > 0, got {init_temperature!r}; "
                              "e.g. model.net.init_temperature=10")
        require_bool("learn_temperature", learn_temperature)
        require_bool("skip", skip)
        # skip: the image itself added to the scores with a learned weight, so the identity map (the argmax
        # detector, optimal for one bright pixel in white noise) is there from the start, not learned through ReLUs
        self.skip = nn.Parameter(torch.tensor(1.0)) if skip else None
        body, in_ch = [PADDINGS[padding](layers * (kernel_size // 2))], 1
        for _ in range(layers):
            body += [nn.Conv2d(in_ch, channels, kernel_size), nn.ReLU(inplace=True)]
            in_ch = channels
        body.append(nn.Conv2d(in_ch, 1, 1))
        self.scores = nn.Sequential(*body)
        if skip:  # start as the plain argmax detector; the network departs from it only where the loss says so
            nn.init.zeros_(self.scores[-1].weight)
            nn.init.zeros_(self.scores[-1].bias)
        # log-parameterized so it stays positive; a sharp start (10) already puts most mass on the peak
        log_t = torch.tensor(math.log(init_temperature))
        self.log_temperature = nn.Parameter(log_t) if learn_temperature else nn.Buffer(log_t)

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H, W) per-pixel scores (logits: the soft-argmax and cross-entropy both take them through a
        softmax over pixels)."""
        scores = self.scores(x).squeeze(1)
        if self.skip is not None:
            scores = scores + self.skip * x.squeeze(1)
        return scores * self.log_temperature.exp()

    def readout(self, scores: torch.Tensor) -> torch.Tensor:
        return hard_argmax(scores) if self.readout_name == "argmax" else soft_argmax(scores)

    def forward(self, x):
        return self.readout(self.score_map(x))

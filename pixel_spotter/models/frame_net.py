"""FrameNet: a fully convolutional network that keeps the frame's resolution and answers several maps per pixel,
the outputs a frame model (``frame_localizer.py``) reads: a detection logit, and for emitters sub-pixel offsets,
photons, background and their uncertainties.

As in ``heatmap.py``, the image is padded once by the receptive-field radius and every convolution is unpadded,
so the network is translation-equivariant up to the frame's border (a bright pixel or a spot is found the same
wherever it lies, also in a quadrant it never saw). Dilated layers widen the field cheaply: a spot's neighbours
a few PSF widths away are what tells crowded frames apart.
"""

from __future__ import annotations

import torch
from torch import nn

from pixel_spotter.errors import ConfigError
from pixel_spotter.models import _is_int, require_int
from pixel_spotter.models.heatmap import PADDINGS

PRIOR_LOGIT = -4.6  # sigmoid: 0.01, the detection probability every pixel starts at


class FrameNet(nn.Module):
    min_input_size = 1
    weights_used = "random init"

    def __init__(self, outputs: int = 1, channels: int = 16, dilations=(1, 1), kernel_size: int = 3,
                 padding: str = "zeros"):
        super().__init__()
        require_int("outputs", outputs, 8, maximum=64)
        require_int("channels", channels, 32, maximum=1024)
        require_int("kernel_size", kernel_size, 3, odd=True, maximum=15)
        from omegaconf import ListConfig

        dilations = list(dilations) if isinstance(dilations, (ListConfig, tuple)) else dilations
        if not (isinstance(dilations, list) and 1 <= len(dilations) <= 32
                and all(_is_int(d) and 1 <= d <= 16 for d in dilations)):
            raise ConfigError(f"model.net.dilations must list 1 to 32 integers in [1, 16] (one per layer), got "
                              f"{dilations!r}; e.g. model.net.dilations=[1,1,2,4]")
        if padding not in PADDINGS:
            raise ConfigError(f"model.net.padding={padding!r} is unknown; choose one of {', '.join(PADDINGS)}")
        self.outputs = outputs
        self.radius = sum(d * (kernel_size // 2) for d in dilations)
        layers: list[nn.Module] = [PADDINGS[padding](self.radius)]
        width = 1
        for d in dilations:
            layers += [nn.Conv2d(width, channels, kernel_size, dilation=d), nn.ReLU()]
            width = channels
        head = nn.Conv2d(width, outputs, 1)
        with torch.no_grad():  # start at a small detection probability, as few pixels hold an emitter (RetinaNet's
            head.bias[0] = PRIOR_LOGIT  # prior init): the first steps then need not unlearn a sea of false positives
        layers.append(head)
        self.body = nn.Sequential(*layers)
        # channels-last: oneDNN's fast layout on CPU for many-channel 3x3 convolutions (on 2 cores about 1.3x
        # faster to train and 1.5x to run than the default; `pixel-spotter emitters bench` reports frames/s)
        self.to(memory_format=torch.channels_last)

    def forward(self, images):
        """(N, 1, H, W) -> (N, outputs, H, W) raw maps (their meaning is the frame model's)."""
        return self.body(images.contiguous(memory_format=torch.channels_last)).contiguous()

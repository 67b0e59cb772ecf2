"""torchvision's ResNet18, adapted to one-channel images and a 2-number (x, y) output.

Adaptation, and why:
- conv1's pretrained RGB filters are *summed* over the colour axis into one input channel. A grey
  image fed as R=G=B gives exactly the same conv1 response, so the pretrained stem stays meaningful
  (re-initialising conv1 would throw away the layer that the rest was trained against).
- Inputs are standardized with the ImageNet statistics averaged over RGB (mean 0.449, std 0.226),
  the scale the pretrained filters expect.
- The architecture is otherwise torchvision's own (stride-2 stem + max-pool, 50x50 -> 2x2 before
  global pooling): this is the write-ups' "fine-tuned ResNet18" and the baseline to beat, not a tuned model.
- ``fc`` becomes Linear(512, 2).

Weights (``weights``):
- ``imagenet``: torchvision's IMAGENET1K_V1 through its weights API (torch hub cache or download);
  if they cannot be had, fail before training with a one-line fix.
- ``auto``: ``imagenet`` when it can be had, otherwise random init with one warning.
- ``none``: random init.
- a file path: a saved state dict, either torchvision's 3-channel ImageNet format (adapted as above)
  or this model's own 1-channel format (e.g. ``net.`` weights of an earlier run).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from pixel_spotter.errors import UserError

log = logging.getLogger(__name__)

WEIGHT_CHOICES = ("auto", "imagenet", "none")
GREY_MEAN, GREY_STD = 0.449, 0.226
DOWNLOAD_TIMEOUT_S = 20


class WeightsUnavailable(UserError):
    """ImageNet weights could not be loaded (offline, no cache)."""


def imagenet_state_dict() -> dict:
    """ImageNet ResNet18 weights from the torch hub cache, downloading them if needed."""
    weights = ResNet18_Weights.IMAGENET1K_V1
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # never hang a run on a dead network
    try:
        return weights.get_state_dict(progress=False)
    except Exception as err:  # URLError, timeouts, truncated cache files ...
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise WeightsUnavailable(
            f"ImageNet ResNet18 weights could not be loaded ({type(err).__name__}: {err}). Fix: go online once, "
            f"or copy {Path(weights.url).name} (from {weights.url}) to {cache}, or pass "
            "model.net.weights=/path/to/resnet18.pth, or model.net.weights=none to train from scratch."
        ) from None
    finally:
        socket.setdefaulttimeout(old_timeout)


def load_state_dict_file(path: str | os.PathLike) -> dict:
    """Read a state dict from ``path`` with one clear error for missing or corrupt files."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist; fix model.net.weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"weights file {path} is not a readable torch state dict ({type(err).__name__}); "
                         "re-save it with torch.save(model.state_dict(), path)") from None
    if isinstance(state, dict) and "state_dict" in state:  # a Lightning checkpoint
        state = {k.removeprefix("net.model.").removeprefix("net."): v for k, v in state["state_dict"].items()}
    if not isinstance(state, dict):
        raise UserError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    return state


def _adapt_to_grey(state: dict) -> dict:
    """Map a torchvision 3-channel/1000-class state dict onto the 1-channel/2-output model."""
    state = dict(state)
    if state.get("conv1.weight") is not None and state["conv1.weight"].shape[1] == 3:
        state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)
    if state.get("fc.weight") is not None and state["fc.weight"].shape[0] != 2:
        state.pop("fc.weight"), state.pop("fc.bias", None)  # ImageNet classifier: replaced by our head
    return state


class ResNet18Regressor(nn.Module):
    min_input_size = 2

    def __init__(self, weights: str = "auto"):
        super().__init__()
        self.model = resnet18(weights=None)
        self.model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.model.fc = nn.Linear(512, 2)
        self.weights_used = self._load(str(weights))

    def _load(self, weights: str) -> str:
        if weights == "none":
            return "none (random init)"
        if weights in ("auto", "imagenet"):
            try:
                state = imagenet_state_dict()
            except WeightsUnavailable as err:
                if weights == "imagenet":
                    raise
                log.warning("model.net.weights=auto: ImageNet weights unavailable, training ResNet18 from scratch. %s",
                            err)
                return "none (auto: ImageNet weights unavailable)"
            source = "imagenet (IMAGENET1K_V1)"
        else:
            state, source = load_state_dict_file(weights), f"file: {weights}"
        try:
            missing, unexpected = self.model.load_state_dict(_adapt_to_grey(state), strict=False)
        except RuntimeError as err:  # shape mismatches
            raise UserError(f"weights {weights} do not fit ResNet18: {str(err).splitlines()[-1].strip()}") from None
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise UserError(
                f"weights {weights} do not fit ResNet18: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return source

    def forward(self, x):
        return self.model((x - GREY_MEAN) / GREY_STD)

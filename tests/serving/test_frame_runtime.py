"""serving/frame_runtime.py: a frame model's network run by ONNX Runtime answers the maps and localizations that
PyTorch does; what cannot run there is said (auto: PyTorch and why; --runtime onnxruntime: one line)."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch

from pixel_spotter.errors import UserError
from pixel_spotter.models.frame_localizer import FrameLocalizer
from pixel_spotter.models.frame_net import FrameNet
from pixel_spotter.serving import frame_runtime
from pixel_spotter.serving.frame_runtime import use_runtime

pytestmark = pytest.mark.usefixtures("one_thread")


def _model() -> FrameLocalizer:
    torch.manual_seed(0)
    net = FrameNet(outputs=9, channels=8, dilations=[1, 2], padding="replicate")
    with torch.no_grad():
        net.body[-1].bias[0] = 0.0  # probabilities near 0.5: local maxima to decode, not a blank prior
    return FrameLocalizer(net, loss="mixture", decode="local_max", threshold=0.6, photon_scale=1000.0).eval()


def test_onnxruntime_answers_the_maps_and_localizations_of_pytorch():
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    torch_model = _model()
    onnx_model = copy.deepcopy(torch_model)
    assert use_runtime(onnx_model, "onnxruntime", 16, 16) == ("onnxruntime", "")
    assert not list(onnx_model.net.parameters())  # the network is the session's now
    images = torch.rand(3, 1, 24, 20, generator=torch.Generator().manual_seed(1)) * 3  # larger than the probe
    with torch.inference_mode():
        assert float((torch_model(images) - onnx_model(images)).abs().max()) <= 1e-4
        expected, found = torch_model.localize(images), onnx_model.localize(images)
    assert sum(len(f["xy"]) for f in expected) > 3  # something to compare
    for a, b in zip(expected, found):
        assert a["xy"].shape == b["xy"].shape and np.allclose(a["xy"], b["xy"], atol=1e-4)
        assert np.allclose(a["sigma"], b["sigma"], rtol=1e-3) and np.allclose(a["photons"], b["photons"], rtol=1e-3)
    assert use_runtime(onnx_model, "auto", 16, 16) == ("onnxruntime", "")  # asked again: already switched


def test_torch_is_left_as_it_is():
    model = _model()
    net = model.net
    assert use_runtime(model, "torch", 16, 16) == ("torch", "") and model.net is net


def test_without_onnxruntime_auto_says_why_and_an_explicit_ask_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as when the extra is not installed
    model = _model()
    runtime, why = use_runtime(model, "auto", 16, 16)
    assert runtime == "torch" and "onnxruntime is not installed" in why and isinstance(model.net, FrameNet)
    with pytest.raises(UserError, match="--runtime onnxruntime: onnxruntime is not installed.*--runtime torch"):
        use_runtime(model, "onnxruntime", 16, 16)
    with pytest.raises(UserError, match="--runtime 'tensorrt' is unknown"):
        use_runtime(model, "tensorrt", 16, 16)


def test_maps_that_differ_keep_pytorch(monkeypatch):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    monkeypatch.setattr(frame_runtime, "PARITY", -1.0)  # no difference is small enough
    model = _model()
    runtime, why = use_runtime(model, "auto", 16, 16)
    assert runtime == "torch" and "differ from PyTorch's" in why and isinstance(model.net, FrameNet)


def test_a_pass_takes_as_many_frames_as_its_runtime_is_fastest_with():
    from pixel_spotter.serving.frame_runtime import frames_per_pass

    assert frames_per_pass("onnxruntime", 64, 64) == 64 and frames_per_pass("torch", 64, 64) == 16
    assert frames_per_pass("onnxruntime", 128, 128) == 16 and frames_per_pass("torch", 512, 512) == 1
    assert frames_per_pass("onnxruntime", 8, 8) == frame_runtime.MAX_PASS_FRAMES  # tiny frames: capped

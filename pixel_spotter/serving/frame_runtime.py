"""Which runtime computes a frame model's maps at inference (`pixel-spotter localize`, `pixel-spotter emitters
bench`): PyTorch, or ONNX Runtime (the export extra) running the same network, exported in memory when the run is
loaded. On 2 CPU cores ONNX Runtime made the emitter model (network and decode) about 1.16x faster than PyTorch
alone (its convolutions fused with their activations). The decode, the refinement and everything after the maps
stay PyTorch's, so both give the same localizations up to float rounding, which ``use_runtime`` checks on a probe
before it switches.

``auto`` (the commands' default) takes ONNX Runtime when it is installed and passes that check, else PyTorch.
"""

from __future__ import annotations

import io
import warnings

from pixel_spotter.errors import UserError

# torch is imported where it is used: the commands' argument parsers read RUNTIMES without paying for it
RUNTIMES = ("auto", "torch", "onnxruntime")
PARITY = 1e-3  # the largest difference of any raw map value allowed between the runtimes on the probe
INPUT_NAME, OUTPUT_NAME = "images", "maps"
# the pixels one network pass takes, per runtime: on 2 CPU cores PyTorch was fastest at 16 frames of 64x64 a pass
# (938 frames/s for the 16-channel emitter model at 0.25/um^2; 64 frames: 766) and ONNX Runtime at 64 (1324; 16
# frames: 992), network and decode together
PASS_PIXELS = {"torch": 16 * 64 * 64, "onnxruntime": 64 * 64 * 64}
MAX_PASS_FRAMES = 4096


def frames_per_pass(runtime: str, height: int, width: int) -> int:
    """How many ``height`` x ``width`` frames one network pass of ``runtime`` ("torch" or "onnxruntime") takes:
    ``PASS_PIXELS`` worth, at least 1."""
    return max(1, min(MAX_PASS_FRAMES, PASS_PIXELS[runtime] // max(1, height * width)))


def onnx_runtime_net(session, net):
    """A module whose forward is ``net``'s, (N, 1, H, W) -> (N, C, H, W), run by the onnxruntime ``session``:
    inference only (no gradients, CPU tensors out)."""
    import torch
    from torch import nn

    class OnnxRuntimeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.outputs, self.radius = getattr(net, "outputs", None), getattr(net, "radius", None)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            feed = {INPUT_NAME: images.detach().to("cpu", torch.float32).contiguous().numpy()}
            return torch.from_numpy(session.run([OUTPUT_NAME], feed)[0])

    return OnnxRuntimeNet()


def onnx_bytes(net, height: int, width: int) -> bytes:
    """``net`` as an ONNX model whose batch, height and width are free (a movie's frames may be larger than the
    training frames): the TorchScript-based exporter, about 1 s here (the dynamo one took 3 s for the same file)."""
    import torch

    from pixel_spotter.serving.export_writers import OPSET, _silenced

    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings(), _silenced():
        warnings.simplefilter("ignore")  # the exporter's deprecation note
        torch.onnx.export(net, (torch.zeros(2, 1, height, width),), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
    return buffer.getvalue()


def _onnx_net(net, height: int, width: int):
    """(the network on ONNX Runtime, "") or (None, why it cannot run there)."""
    import torch

    try:
        import onnxruntime
    except ImportError:
        return None, "onnxruntime is not installed (the export extra: pip install -e '.[export]')"
    try:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as many as PyTorch would use (--threads, OMP)
        options.inter_op_num_threads = 1
        # no busy-waiting between runs: PyTorch's decode runs on the same cores next (1.16x faster than PyTorch
        # alone with it off, 1.07x with it on, at 1 emitter per um^2 on 2 cores)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: its graph-optimization notes are not the user's concern
        session = onnxruntime.InferenceSession(onnx_bytes(net, height, width), options,
                                               providers=["CPUExecutionProvider"])
    except Exception as err:  # an operator the exporter or the runtime does not take
        return None, f"the network could not be run by onnxruntime ({type(err).__name__})"
    runner = onnx_runtime_net(session, net)
    probe = torch.rand(2, 1, height, width, generator=torch.Generator().manual_seed(0)) * 4
    with torch.inference_mode():
        difference = float((net(probe).float() - runner(probe)).abs().max())
    if not difference <= PARITY:  # NaN included
        return None, f"onnxruntime's maps differ from PyTorch's by {difference:.3g} on a probe (allowed {PARITY:g})"
    return runner, ""


def use_runtime(model, runtime: str, height: int, width: int) -> tuple[str, str]:
    """Run ``model``'s network (a FrameLocalizer in eval mode, on the CPU) by ``runtime``, checked on a probe of
    ``height`` x ``width`` frames; returns (the runtime in use, "torch" or "onnxruntime", and for ``auto`` why it
    is PyTorch when it is, else ""). ``onnxruntime`` asked for and unusable is one line."""
    if runtime not in RUNTIMES:
        raise UserError(f"--runtime {runtime!r} is unknown; choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return "torch", ""
    weights = next(model.parameters(), None)
    if weights is None:  # already switched
        return "onnxruntime", ""
    if weights.device.type != "cpu":
        why = "the model is on a GPU (onnxruntime runs here on the CPU)"
    else:
        runner, why = _onnx_net(model.net, height, width)
        if runner is not None:
            model.net = runner
            return "onnxruntime", ""
    if runtime == "onnxruntime":
        raise UserError(f"--runtime onnxruntime: {why}; use --runtime torch")
    return "torch", why

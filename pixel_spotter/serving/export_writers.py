"""Writing one exported file: the traced module (predict_pixels), the exporters run silently, an ONNX refusal as
one line, and the versions a contract records. ``export.py`` decides what to write and checks it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

from pixel_spotter.errors import UserError
from pixel_spotter.serving.exported import IDENTITY

INPUT_NAME, OUTPUT_NAME = "images", "xy"
OPSET = 18


def require_onnx() -> None:
    """ONNX export needs the export extra (onnx, onnxruntime, onnxscript): one line naming the install."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"--format onnx needs {', '.join(missing)}, which are not installed; install the export "
                        "extra: pip install -e '.[export]' (make setup installs it), or use --format torchscript")


def pixels_module(model):
    """predict_pixels (net(images) * px_scale) as a plain module, what the exporters trace: the
    LightningModule itself cannot be traced (it reaches for its Trainer). The parity check at export
    holds it to predict_pixels."""
    from torch import nn

    class Pixels(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model.net
            self.register_buffer("px_scale", model.px_scale.detach().clone())

        def forward(self, images):
            return self.net(images) * self.px_scale

    return Pixels().eval()


@contextlib.contextmanager
def _silenced():
    """Nothing the exporters print reaches the terminal: Python's and the C++ side's stdout and stderr go to
    a temporary file (a failing ONNX export prints the whole graph)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        saved = []
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        except OSError:  # no real file descriptors (e.g. an embedding host): the Python-level redirect only
            pass
        try:
            yield
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


def onnx_refusal(err: Exception | None, why: str | None = None) -> UserError:
    """The one line for a network ONNX cannot hold: the unsupported operator when the exporter names one."""
    if why is None:
        ops = sorted(set(re.findall(r"aten::[A-Za-z0-9_.]+", str(err)))) if err is not None else []
        why = (f"unsupported operator {', '.join(ops[:3])}" if ops else
               f"{type(err).__name__}" if err is not None else "unsupported")
    return UserError(f"this model cannot be exported to ONNX ({why}); export it with --format torchscript "
                     "(predict reads the .pt file the same way)")


def write(fmt: str, module, size: tuple[int, int], out: Path, identity: dict) -> str:
    """Write the traced module carrying ``identity`` (what its answers depend on: exported.identity_of); returns
    the exporter used. ONNX: torch.onnx.export's default (dynamo) path, the older TorchScript-based exporter only
    where the dynamo one fails on a network."""
    exporter = _traced(fmt, module, size, out, identity)
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(out))
        onnx.helper.set_model_props(model, {IDENTITY: json.dumps(identity)})
        onnx.save(model, str(out))
    return exporter


def _traced(fmt: str, module, size: tuple[int, int], out: Path, identity: dict) -> str:
    import torch

    example = torch.zeros(2, 1, *size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and constant-folding notes
        if fmt == "torchscript":
            extra = {f"{IDENTITY}.json": json.dumps(identity)}
            traced = torch.jit.trace(module, example, check_trace=False)
            with open(out, "wb") as f:  # a file, not its path: torch cannot take a path that is not UTF-8
                torch.jit.save(traced, f, _extra_files=extra)
            return "torch.jit.trace"
        names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": OPSET}
        try:
            with _silenced():  # its progress lines
                torch.onnx.export(module, (example,), str(out), dynamo=True, verbose=False, external_data=False,
                                  dynamic_shapes={"images": {0: torch.export.Dim("batch")}}, **names)
            return "torch.onnx.export(dynamo=True)"
        except Exception as first:
            out.unlink(missing_ok=True)
            try:
                with _silenced():  # a failure here prints the whole graph
                    torch.onnx.export(module, (example,), str(out), dynamo=False,
                                      dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, **names)
            except Exception as second:
                out.unlink(missing_ok=True)
                found = [e for e in (second, first) if "aten::" in str(e)]
                raise onnx_refusal(found[0] if found else first) from None
            return "torch.onnx.export(dynamo=False)"


def versions(fmt: str) -> dict:
    import torch

    import pixel_spotter

    versions = {"torch": torch.__version__, "pixel_spotter": pixel_spotter.__version__}
    if fmt == "onnx":
        import onnx
        import onnxruntime

        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__, opset=OPSET)
        try:
            import onnxscript

            versions["onnxscript"] = onnxscript.__version__
        except ImportError:
            pass
    return versions

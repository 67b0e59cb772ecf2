"""Reading an exported model back (``pixel-spotter predict model.onnx|model.pt IMAGE...``): the file and its
input contract (``<file>.json``, written by ``pixel_spotter.serving.export``), checked against each other.

What changes answers (the task, the image size, a spot export's ``input_scale``) is written twice: into the
contract and into the model file itself (ONNX metadata; a TorchScript extra file). A contract that disagrees with
its file was edited or belongs to another export and is refused; so is one of an older version that carries no
such copy. .onnx runs with onnxruntime; .pt with ``torch.jit.load``, and only after ``torchscript_check`` found
nothing but what our own exports hold (``trust=True``, predict's ``--trust``, skips that check).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from pixel_spotter.errors import UserError

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
CONTRACT_VERSION = 2  # 2: the file carries its identity (task, size, input_scale); 1 did not
IDENTITY = "pixel_spotter_identity"  # the ONNX metadata key, and (+ .json) the TorchScript extra file


def identity_of(contract: dict, task) -> dict:
    """What an export's answers depend on besides its weights, as the contract states it."""
    return {"task": task.name, "height": contract["height"], "width": contract["width"],
            "input_scale": contract.get("input_scale")}


def contract_path(model_file: Path) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    model_file = Path(model_file)
    return model_file.with_name(model_file.name + ".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class OnnxModel:
    """An exported .onnx file run with onnxruntime: ``size`` = (H, W); (N, 1, H, W) float32 -> (N, 2)."""

    def __init__(self, path: Path, size: tuple[int, int], threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(f"{path} is an ONNX model but onnxruntime is not installed; install the export "
                            "extra: pip install -e '.[export]'") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on stderr around the answers
        if threads:
            options.intra_op_num_threads = threads
        try:
            # The model's bytes, not its path: onnxruntime cannot take a path that is not UTF-8
            self.session = ort.InferenceSession(Path(path).read_bytes(), options, providers=["CPUExecutionProvider"])
            (inp,), (_,) = self.session.get_inputs(), self.session.get_outputs()
        except Exception as err:
            raise UserError(f"{path} cannot be loaded by onnxruntime ({type(err).__name__}); it is corrupt or not "
                            "an ONNX model: export it again") from None
        if list(inp.shape[1:]) != [1, *size] or inp.type != "tensor(float)":
            raise UserError(f"{path} takes {inp.type} {inp.shape} but its contract says float32 (N, 1, {size[0]}, "
                            f"{size[1]}); the contract belongs to another export: export it again")
        self.input_name, self.size = inp.name, size
        self.identity = _parsed(self.session.get_modelmeta().custom_metadata_map.get(IDENTITY))

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        except Exception as err:
            raise _failed(self, err) from None


class TorchScriptModel:
    """An exported TorchScript .pt file: ``size`` = (H, W); (N, 1, H, W) float32 -> (N, 2). Unless ``trust``,
    refused before it is loaded or run when it holds more than our exports do (``torchscript_check``)."""

    def __init__(self, path: Path, size: tuple[int, int], trust: bool = False):
        import torch

        from pixel_spotter.serving import torchscript_check

        if not trust:
            torchscript_check.check_archive(Path(path))  # torch.jit.load runs a scripted __setstate__
        extra = {f"{IDENTITY}.json": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load's deprecation note: not the user's concern
                with open(path, "rb") as f:  # a file, not its path: torch cannot take a path that is not UTF-8
                    self.module = torch.jit.load(f, map_location="cpu", _extra_files=extra).eval()
        except Exception as err:
            raise UserError(f"{path} cannot be loaded as TorchScript ({type(err).__name__}); it is corrupt, not "
                            "a TorchScript file or not from pixel-spotter export: export it again") from None
        if not trust:
            torchscript_check.check_graph(self.module, Path(path))
        self.size, self.identity = size, _parsed(extra[f"{IDENTITY}.json"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        try:
            with torch.inference_mode():
                return self.module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()
        except Exception as err:
            raise _failed(self, err) from None


def _parsed(text) -> dict | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _failed(model, err: Exception) -> UserError:
    return UserError(f"the exported model failed on {model.size[0]}x{model.size[1]} images "
                     f"({type(err).__name__}); its contract does not match it: export the model again")


MAX_CONTRACT_BYTES = 1_000_000


def read_contract(path: Path) -> dict:
    """The checked contract of exported file ``path``: a UserError when it is missing or does not match."""
    path, fmt = Path(path), _format_of(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a run folder or a file written by pixel-spotter export")
    where = contract_path(path)
    if not where.is_file():
        raise UserError(f"{path} has no input contract {where} next to it; export the model again with "
                        "pixel-spotter export (the contract gives the image size)")
    if where.stat().st_size > MAX_CONTRACT_BYTES:  # a contract is a few kB; never parse a planted giant file
        raise UserError(f"{where} is {where.stat().st_size:,} bytes, not an export contract (a few kB); export "
                        "the model again")
    try:
        contract = json.loads(where.read_text())
        height, width = contract["height"], contract["width"]
        if contract.get("contract_version") != CONTRACT_VERSION:
            raise UserError(f"{where} is an export contract of version {contract.get('contract_version')!r}, "
                            f"written before exports carried their own copy of it (version {CONTRACT_VERSION}); "
                            "export the model again")
        fields_ok = (contract["format"] == fmt and contract["dtype"] == "float32" and "value_range" in contract
                     and isinstance(contract["sha256"], str))
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"{where} is not a usable export contract ({type(err).__name__}); export the model "
                        "again") from None
    if not (fields_ok and isinstance(height, int) and isinstance(width, int) and 2 <= height <= 10_000
            and 2 <= width <= 10_000):
        raise UserError(f"{where} does not describe a float32 {fmt} model of a possible size; export the model "
                        "again")
    contract_task(contract, where)  # the task's own fields (value range, input_scale) are what it writes
    if _sha256(path) != contract["sha256"]:
        raise UserError(f"{path} does not match its contract {where} (sha256 differs: the file was changed or "
                        "the contract belongs to another export); export the model again")
    return contract


def _format_of(path: Path) -> str:
    suffix = Path(path).suffix.lower()
    for fmt, known in SUFFIXES.items():
        if suffix == known:
            return fmt
    raise UserError(f"{path} is not an exported model ({', '.join(SUFFIXES.values())})")


def contract_task(contract: dict, where: Path):
    """The task a checked contract names (``task``), refused when its fields are not what that task writes."""
    from pixel_spotter import tasks

    name = contract.get("task")
    if name not in tasks.names():
        raise UserError(f"{where} names the task {name!r}, which is none of {', '.join(tasks.names())}; export the "
                        "model again")
    try:
        task = tasks.get(name).from_contract(contract)
    except UserError as err:
        raise UserError(f"{where}: {err}; export the model again") from None
    except Exception as err:  # a planted contract: wrong types anywhere
        raise UserError(f"{where} is not a usable export contract ({type(err).__name__}); export the model "
                        "again") from None
    expected = task.contract()
    if contract["value_range"] != expected["value_range"] or contract.get("input_scale") != expected.get("input_scale"):
        raise UserError(f"{where} says task {name!r} but holds another task's input fields (value_range, "
                        "input_scale); the contract was edited or is corrupt: export the model again")
    return task


def open_exported(path: Path, threads: int | None = None, trust: bool = False):
    """The model source for an exported file (after checking its contract against it); its ``task`` is the
    contract's (what predict feeds it: brightness, 0 to 1 for a clean image, or photon counts / input_scale for
    the spot task)."""
    contract = read_contract(path)
    size = (contract["height"], contract["width"])
    where = contract_path(path)
    task = contract_task(contract, where)
    if contract["format"] == "onnx":
        model = OnnxModel(Path(path), size, threads)
    else:
        model = TorchScriptModel(Path(path), size, trust=trust)
    stated = identity_of(contract, task)
    if model.identity != stated:
        raise UserError(f"{where} does not match the model file {path} (it states {_shown(stated)}, the file "
                        f"was made for {_shown(model.identity)}): the contract was edited, or the contract belongs to "
                        "another export; export the model again")
    model.task = task
    return model


def _shown(identity: dict | None) -> str:
    if not identity:
        return "nothing it records"
    return ", ".join(f"{k} {v}" for k, v in identity.items() if v is not None)

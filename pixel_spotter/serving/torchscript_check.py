"""A TorchScript file is a program: before one is loaded and run, check that it is one of ours.

``torch.jit.load`` itself runs code (a scripted ``__setstate__``), and a loaded module's ``forward`` may call any
operator TorchScript has, ``aten::from_file`` (reads or creates files) among them. So, unless the user says
``--trust``:

1. before loading, the archive may only hold what ``torch.jit.trace(...).save`` writes, and its code may define
   no method but ``forward`` (traced submodules' ``forward``, ``forward1``, ...): no ``__setstate__``;
2. after loading and before the first call, every node of the inlined forward graph must be an operator that
   pixel-spotter's own exports use (``ALLOWED_OPS``: the union over every network in ``conf/model/``, kept
   complete by a test that exports each of them).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from pixel_spotter.errors import UserError

ALLOWED_OPS = frozenset({
    "aten::Int", "aten::ScalarImplicit", "aten::__and__", "aten::__or__", "aten::_convolution", "aten::abs",
    "aten::adaptive_avg_pool2d", "aten::add", "aten::add_", "aten::amax", "aten::arange", "aten::argmax",
    "aten::avg_pool2d", "aten::batch_norm", "aten::bitwise_not", "aten::cat", "aten::clamp", "aten::detach",
    "aten::diag_embed", "aten::diagonal", "aten::div", "aten::dropout", "aten::einsum", "aten::exp", "aten::expand",
    "aten::flatten", "aten::flip", "aten::floor_divide", "aten::full", "aten::full_like", "aten::gather",
    "aten::ge", "aten::gelu", "aten::gt", "aten::index", "aten::isfinite", "aten::le", "aten::linalg_solve",
    "aten::linear", "aten::linspace", "aten::log", "aten::log1p", "aten::logsumexp", "aten::lt", "aten::matmul",
    "aten::max", "aten::max_pool2d", "aten::maximum", "aten::mean", "aten::minimum", "aten::mul", "aten::neg",
    "aten::numpy_T", "aten::ones_like", "aten::pad", "aten::pow", "aten::relu", "aten::relu_", "aten::remainder",
    "aten::reshape", "aten::rsub", "aten::select", "aten::sigmoid", "aten::size", "aten::slice", "aten::softmax",
    "aten::sort", "aten::special_ndtr", "aten::sqrt", "aten::squeeze", "aten::stack", "aten::sub", "aten::sum",
    "aten::to", "aten::transpose", "aten::unbind", "aten::unsqueeze", "aten::view", "aten::where", "prim::Constant",
    "prim::GetAttr", "prim::ListConstruct", "prim::ListUnpack", "prim::NumToTensor", "prim::TupleConstruct",
    "prim::TupleUnpack",
})
# what torch.jit.ScriptModule.save writes into its zip archive, below the archive's own top folder
_ENTRY = re.compile(r"[^/]+/(data\.pkl|constants\.pkl|version|\.data/version|byteorder|\.data/serialization_id|"
                    r"data/\d+|constants/\d+|traced_inputs\.pkl|traced_inputs/\d+|extra/[\w.-]+|code/__torch__/[\w/.-]+\.py(\.debug_pkl)?)")
_METHOD = re.compile(r"^\s*def\s+(\w+)\s*\(", re.M)
_TRACED_METHOD = re.compile(r"forward\d*")
MAX_CODE_BYTES = 50_000_000  # our largest export's code is a few hundred kB


def _refused(path: Path, why: str) -> UserError:
    return UserError(f"{path} is not a TorchScript file pixel-spotter's export writes ({why}), and a TorchScript "
                     "file is a program: it was not run. Export the model again, use its .onnx export, or pass "
                     "--trust if you made this file yourself")


def check_archive(path: Path) -> None:
    """Refuse, before ``torch.jit.load``, an archive with foreign entries or code defining other methods."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            strange = [i.filename for i in infos if not _ENTRY.fullmatch(i.filename)]
            code = [i for i in infos if i.filename.endswith(".py") and "/code/" in i.filename]
            if sum(i.file_size for i in code) > MAX_CODE_BYTES:
                raise _refused(path, "its code is larger than any export's")
            methods = {m for i in code for m in _METHOD.findall(archive.read(i).decode("utf-8", "replace"))}
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"{path} cannot be loaded as TorchScript ({type(err).__name__}); it is corrupt, not a "
                        "TorchScript file or not from pixel-spotter export: export it again") from None
    if strange:
        raise _refused(path, f"it holds {strange[0]!r}")
    foreign = sorted(m for m in methods if not _TRACED_METHOD.fullmatch(m))
    if foreign:
        raise _refused(path, f"its code defines {', '.join(foreign[:3])}, which a traced export never has")


def graph_ops(module) -> set[str]:
    """Every node kind of the module's inlined forward graph, nested blocks included."""
    found: set[str] = set()

    def walk(block) -> None:
        for node in block.nodes():
            found.add(node.kind())
            for inner in node.blocks():
                walk(inner)

    walk(module.inlined_graph)
    return found


def check_graph(module, path: Path) -> None:
    """Refuse, before the first call, a loaded module whose forward uses an operator our exports never use."""
    foreign = sorted(graph_ops(module) - ALLOWED_OPS)
    if foreign:
        raise _refused(path, f"its forward calls {', '.join(foreign[:3])}")

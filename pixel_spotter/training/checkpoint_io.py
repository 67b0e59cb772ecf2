"""Atomic checkpoint writes: a checkpoint file is either the previous one or the new one, whole, never a part.

Lightning 2.6 (``TorchCheckpointIO.save_checkpoint`` -> ``lightning.fabric.utilities.cloud_io._atomic_save``)
writes through an fsspec transaction, which puts the bytes in a ``tempfile.mkstemp()`` file in ``$TMPDIR`` and
then ``shutil.move``s it over the target. When the run folder is on another filesystem than ``$TMPDIR``, the
move is a copy into the already truncated target: a kill leaves a 0-byte ``last.ckpt``, a full disk a cut-short
one; and a full ``$TMPDIR`` fails the save however much room the run folder has. Nothing is fsynced either.

``AtomicCheckpointIO`` writes beside the target instead (same folder, so the same filesystem), fsyncs, and
``os.replace``s; on any failure the partial file is removed and the previous checkpoint stays as it was.
"""

from __future__ import annotations

import os
import secrets
from contextlib import suppress
from pathlib import Path
from typing import Any

import fsspec
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from omegaconf import DictConfig, ListConfig

from pixel_spotter.errors import UserError

# The partial file's name ends in this, never in ".ckpt": a glob for checkpoints (resume's fallback to the best
# one, Lightning's search for last*.ckpt) cannot mistake it for one. The leading dot keeps it out of plain `ls`.
PARTIAL_SUFFIX = ".partial"


def partial_path(target: Path) -> Path:
    """A fresh name for the file a checkpoint is written to before it becomes ``target``."""
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves are atomic and durable (loading and removal are Lightning's)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            # Lightning's own errors and remote (s3://, gs://) writes, whose stores replace objects whole.
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(fsspec.core.url_to_fs(str(path))[1])  # file:///a/b -> /a/b
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(checkpoint, target)


def atomic_torch_save(obj: Any, target: Path) -> None:
    """``torch.save(obj)`` into ``target``, which holds either its old bytes or all the new ones at any moment."""
    partial = partial_path(target)
    try:
        _write_synced(obj, partial)
        os.replace(partial, target)  # atomic: same folder, same filesystem
    except BaseException:  # also KeyboardInterrupt: the partial file must not outlive a failed save
        with suppress(FileNotFoundError):
            partial.unlink()
        raise
    _sync_folder(target.parent)


def _write_synced(obj: Any, partial: Path) -> None:
    # O_EXCL: never write into someone else's file; mode 0o666 minus the umask, as a plain open() would give.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as out:
        torch.save(obj, out)
        out.flush()
        os.fsync(out.fileno())  # the bytes are on disk before the name points at them


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; some filesystems cannot fsync a folder, and the file is whole anyway."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def with_atomic_checkpoints(user_plugins: Any = None) -> list:
    """The Trainer's ``plugins``: the user's (``trainer.plugins``, a list, instantiated here, as passing ``plugins=``
    to ``instantiate`` replaces them) plus AtomicCheckpointIO. A CheckpointIO of the user's own is refused:
    resume relies on every checkpoint write being atomic."""
    if user_plugins is None:
        return [AtomicCheckpointIO()]
    if not isinstance(user_plugins, (list, tuple, ListConfig)):  # Hydra cannot merge our list into one plugin
        raise UserError("trainer.plugins must be a list, e.g. trainer.plugins=[{_target_: ...}]; got "
                        f"{type(user_plugins).__name__}")
    plugins = [_instantiated(p) for p in user_plugins]
    if any(isinstance(p, CheckpointIO) for p in plugins):
        raise UserError("trainer.plugins holds a CheckpointIO, but a run writes its checkpoints with its own "
                        "(pixel_spotter.training.checkpoint_io.AtomicCheckpointIO, so that a kill or a full disk "
                        "cannot corrupt last.ckpt); remove it from trainer.plugins")
    return [*plugins, AtomicCheckpointIO()]


def _instantiated(plugin: Any) -> Any:
    from hydra.utils import instantiate

    return instantiate(plugin) if isinstance(plugin, (dict, DictConfig)) else plugin

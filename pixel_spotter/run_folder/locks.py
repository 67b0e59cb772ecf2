"""Advisory locks (flock): hold a run's or a sweep's lock file, and tell whether a live process holds one.

A lock is held through an open descriptor, so the kernel releases it however its process ends (even
killed): a free lock means nobody is writing any more.
"""

from __future__ import annotations

import os
from pathlib import Path

from pixel_spotter.errors import UserError
from pixel_spotter.run_folder.layout import SWEEP_LOCK

try:  # advisory locks; absent on Windows, where concurrent runs are simply not detected
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


def hold_lock(path: Path, busy: str) -> int | None:
    """Take an exclusive flock on ``path`` (created if missing) and return its descriptor; closing it, or the
    process dying in any way, releases the lock. UserError(busy) when another process holds it."""
    if fcntl is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise UserError(busy) from None
    return fd


def release(fd: int | None) -> None:
    """Drop a lock hold_lock took (None: there was none to take)."""
    if fd is not None:
        os.close(fd)  # closing releases the flock; a killed process releases it the same way


def is_held(path: Path) -> bool:
    """Whether a live process holds the lock on ``path`` (a missing lock file is held by nobody)."""
    if fcntl is None or not path.is_file():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops a shared lock we may have taken


def lock_sweep(sweep: Path) -> int | None:
    """Hold <sweep>/sweep.lock while a sweep runs, so two sweeps never write one sweep folder at once."""
    return hold_lock(Path(sweep) / SWEEP_LOCK, f"another sweep is writing {sweep} right now; wait for it, or leave "
                     "out hydra.sweep.dir to start a new folder")

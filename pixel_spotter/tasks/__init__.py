"""Tasks: the kind of image (one bright pixel, a sub-pixel spot), each a package under this one.

``get(name)`` gives a task's class (``tasks/<name>/task.py``'s ``TASK``); ``name_of(data)`` reads which task a
data config is. The package list is the registry: a name is accepted only when it is one of these packages, so an
untrusted run folder or export contract can name a task but never make us import anything else.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping
from pathlib import Path

from pixel_spotter.errors import ConfigError


def names() -> list[str]:
    """Every task, by package name."""
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.ispkg)


def get(name):
    """The ``Task`` subclass of task ``name``; a ConfigError naming the choices when there is no such task."""
    if not isinstance(name, str) or name not in names():
        raise ConfigError(f"data.task={name!r} is not a task; choose one of {', '.join(names())} "
                          "(data=default is the pixel task, data=spot the spot task)")
    return importlib.import_module(f"pixel_spotter.tasks.{name}.task").TASK


def name_of(data: Mapping) -> str:
    """The task a data config (or a recorded one) is: ``data.task``; configs written before tasks had names have
    none, and were the spot task exactly when they had a ``data.spot`` section."""
    name = data.get("task")
    if name is None:
        return "spot" if data.get("spot") is not None else "pixel"
    return name


def report_sections() -> list:
    """The report section module of every task that has one (``tasks/<name>/report_section.py``: ``TITLE``,
    ``section(entries)`` and ``plots(entries, folder)``; torch-free, as the report never imports torch)."""
    found = []
    for name in names():
        module = f"pixel_spotter.tasks.{name}.report_section"
        if importlib.util.find_spec(module) is not None:
            found.append(importlib.import_module(module))
    return found

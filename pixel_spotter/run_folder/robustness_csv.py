"""robustness.csv (``pixel-spotter robustness``): one row per (model or reference detector, corruption,
severity or pair of severities); written atomically, read back as untrusted input (types and ranges checked,
a reason instead of a trace: the report says "unreadable" and goes on).

Columns: run (the run's job name or path; "reference" for a detector), model (the run's model, or
``argmax`` / ``matched_filter`` / ``matched_filter_bank``), test_set (which test positions: runs sharing it saw
the very same images), corruption, severity, n (images scored), exact_acc (fraction), exact_se (its standard error,
sqrt(p (1 - p) / n)), euclid_px (mean Euclidean error; empty when a model answered a non-finite number),
severity2 (a combined corruption's second severity: for ``blur+noise``, ``blur+noise clipped`` and
``blur+noise 8-bit`` severity is the blur sigma and severity2 the noise sigma; empty for one corruption). A
table written before severity2 existed has no such column and reads with severity2 empty.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from pixel_spotter.run_folder.layout import ROBUSTNESS
from pixel_spotter.run_folder.record import _short

REFERENCE_RUN = "reference"  # the run column of a reference detector's rows
_MAX_BYTES = 20_000_000  # a real file: ~100 bytes per row, a few hundred rows per run
_MAX_TEXT = 500  # longest run / model / test-set name read back


@dataclass(frozen=True)
class RobustnessRow:
    run: str
    model: str
    test_set: str
    corruption: str
    severity: float
    n: int
    exact_acc: float
    exact_se: float
    euclid_px: float | None
    severity2: float | None = None  # last, with a default: rows of one corruption are built as before

    @property
    def reference(self) -> bool:
        return self.run == REFERENCE_RUN


COLUMNS = tuple(f.name for f in fields(RobustnessRow))
OPTIONAL = ("severity2",)  # columns an older table lacks: read as empty


def write_robustness(folder: Path, rows: list[RobustnessRow]) -> Path:
    """<folder>/robustness.csv, written through a temporary file (a reader never sees half of it)."""
    from pixel_spotter.run_folder.folder import _atomic_write

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if v is None or (isinstance(v, float) and not math.isfinite(v)) else
                         f"{v:g}" if k in ("severity", "severity2") else v for k, v in zip(COLUMNS, astuple(row))])
    path = Path(folder) / ROBUSTNESS
    _atomic_write(path, buffer.getvalue())
    return path


def _text(value: str) -> str:
    if not value or len(value) > _MAX_TEXT:
        raise ValueError("an empty or overlong name")
    return value


def _number(value: str, low: float, high: float = math.inf, optional: bool = False) -> float | None:
    if optional and value == "":
        return None
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{_short(value, 30)!r} is outside [{low:g}, {high:g}]")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"n={number} is not a count of images")
    return number


_PARSE = {"run": _text, "model": _text, "test_set": _text, "corruption": _text,
          "severity": lambda v: _number(v, -1e6, 1e6), "severity2": lambda v: _number(v, -1e6, 1e6, optional=True),
          "n": _count, "exact_acc": lambda v: _number(v, 0.0, 1.0),
          "exact_se": lambda v: _number(v, 0.0, 1.0), "euclid_px": lambda v: _number(v, 0.0, optional=True)}
assert set(_PARSE) == set(COLUMNS)


def read_robustness(folder: Path) -> tuple[list[RobustnessRow] | None, str | None]:
    """(rows, problem) from <folder>/robustness.csv: (None, None) when there is none, (None, "robustness.csv
    unreadable: why") when it is not a table this project writes; never raises."""
    path = Path(folder) / ROBUSTNESS
    if not path.exists():
        return None, None
    if not path.is_file():
        return None, f"{ROBUSTNESS} unreadable: not a regular file"
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_BYTES + 1)
        if len(data) > _MAX_BYTES:
            return None, f"{ROBUSTNESS} unreadable: over {_MAX_BYTES // 1_000_000} MB"
        reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
        present = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in present and c not in OPTIONAL]
        if missing:
            return None, f"{ROBUSTNESS} unreadable: no column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        rows = []
        for line, raw in enumerate(reader, start=2):
            if None in raw or None in raw.values():
                return None, f"{ROBUSTNESS} unreadable: line {line} does not match its header"
            try:
                rows.append(RobustnessRow(**{c: _PARSE[c](raw.get(c, "")) for c in COLUMNS}))
            except (ValueError, TypeError) as err:
                return None, f"{ROBUSTNESS} unreadable: line {line}: {_short(err, 80)}"
    except (OSError, ValueError, csv.Error) as err:  # UnicodeDecodeError is a ValueError
        return None, f"{ROBUSTNESS} unreadable: {_short(err)}"
    if not rows:
        return None, f"{ROBUSTNESS} unreadable: no rows"
    return rows, None
